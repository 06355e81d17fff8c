"""Policy: new policy versions, the settings pages, their preview and the change history."""
