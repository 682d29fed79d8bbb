"""Which release of the code is running: a deploy test changes this line and checks who reports it."""

RELEASE = "1"
