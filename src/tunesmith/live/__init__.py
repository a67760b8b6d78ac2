"""Live MIDI call-and-response (`tunesmith live`): `command.live_command`; needs the `live` extra."""
