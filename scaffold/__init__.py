"""djdeploy: render a production Django deployment from one spec."""

__version__ = "0.1.0"
