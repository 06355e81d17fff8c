"""The `verifier` console script: Flask's command line bound to this app's factory."""

from flask.cli import FlaskGroup

from verifier import create_app

main = FlaskGroup(create_app=create_app, help="Verifier: fraud-verification order review.")
