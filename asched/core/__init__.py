"""Pure, synchronous scheduling core: time and randomness are passed in, never read."""
