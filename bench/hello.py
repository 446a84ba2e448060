"""The floor of the HTTP benchmarks: hello world in Flask, served like the app."""

from flask import Flask

app = Flask(__name__)


@app.route("/")
def hello() -> str:
    return "Hello, World!"
