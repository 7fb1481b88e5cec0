"""What the WeChat Official Account and WeCom customer-service channels share: Tencent's
signed, encrypted callbacks, the server API with its shared access_token, and the window
in which a customer may be written to."""
