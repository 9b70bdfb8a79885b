"""The offline engine: the real `__main__.py` evaluated under Pulumi mocks, with stack files read as the Pulumi CLI
reads them and pulumi-tls emulated with real keys. Used by `nina preview`, `nina bundle` and the tests."""
