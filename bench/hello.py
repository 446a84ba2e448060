"""The floor of the HTTP benchmarks: hello world in Flask, served like the app. It also
answers POSTs to the webhook path (the body read, nothing checked), so the webhooks
benchmark can send the floor the very requests it sends the app."""

from flask import Flask, request

app = Flask(__name__)


@app.route("/")
def hello() -> str:
    return "Hello, World!"


@app.post("/webhooks/stripe")
def hello_post() -> str:
    request.get_data()
    return "Hello, World!"
