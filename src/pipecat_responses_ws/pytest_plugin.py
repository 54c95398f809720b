"""pytest plugin: an ``emulator`` fixture so users test their bots offline."""
