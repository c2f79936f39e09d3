//! Configuration: command-line flags, `MINILOKI_*` environment variables and
//! the optional config file, resolved into typed settings.
