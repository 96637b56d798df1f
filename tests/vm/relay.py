#!/usr/bin/env python3
"""Joins stdin/stdout to a TCP connection: QEMU's guestfwd `cmd:` runs one per guest
connection, which is how the guest reaches a server on the host's loopback only."""

import os
import socket
import sys
import threading


def main():
    host, port = sys.argv[1], int(sys.argv[2])
    connection = socket.create_connection((host, port))

    def guest_to_host():
        while True:
            data = os.read(0, 65536)
            if not data:
                connection.shutdown(socket.SHUT_WR)
                return
            connection.sendall(data)

    threading.Thread(target=guest_to_host, daemon=True).start()
    while True:
        data = connection.recv(65536)
        if not data:
            return
        os.write(1, data)


if __name__ == "__main__":
    main()
