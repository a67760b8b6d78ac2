"""The local web studio (`tunesmith serve`): `app.create_app`, `app.serve_command`; needs the `web` extra."""
