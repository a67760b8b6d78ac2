"""The central music type (symusic Score in ticks), its helpers, constants and errors."""
