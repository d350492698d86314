"""Debian's Chromium as the browser tests start it: headless, and quiet on a closed network.

Without the background-networking flags Chromium keeps trying to reach Google's hosts, which
this machine's network refuses.
"""

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
