"""The vault: encrypted document blobs, the master keyring and sealed secrets."""
