"""The local web studio (`tunesmith serve`): `app.create_app` (FastAPI), `command.serve_command`; needs the
`web` extra."""
