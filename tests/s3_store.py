"""A real S3-compatible server for the tests: moto's HTTP server on a loopback port, started
and stopped as a process (stopping it is how a test takes the store away)."""
from __future__ import annotations

import subprocess
import sys
import time
import urllib.request
from typing import Dict, Optional

from tb_server import free_port

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


class MotoStore:
    def __init__(self, port: Optional[int] = None):
        self.port = port or free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.process: Optional[subprocess.Popen] = None

    def env(self) -> Dict[str, str]:
        """What a process needs to reach this store (botocore reads AWS_ENDPOINT_URL)."""
        return {**CREDENTIALS, "AWS_ENDPOINT_URL": self.endpoint}

    def start(self, timeout: float = 60.0) -> "MotoStore":
        self.process = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(self.endpoint + "/moto-api/", timeout=2):
                    return self
            except Exception:
                if self.process.poll() is not None:
                    raise RuntimeError("moto server exited at start") from None
                time.sleep(0.2)
        raise RuntimeError(f"moto server did not answer on {self.endpoint}")

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None

    def filesystem(self):
        import s3fs

        return s3fs.S3FileSystem(key=CREDENTIALS["AWS_ACCESS_KEY_ID"], secret=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
                                 client_kwargs={"endpoint_url": self.endpoint, "region_name": "us-east-1"},
                                 skip_instance_cache=True)

    def make_bucket(self, name: str) -> str:
        import boto3

        boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
                     aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
                     region_name="us-east-1").create_bucket(Bucket=name)
        return f"s3://{name}"

    def objects(self, url: str) -> Dict[str, int]:
        """``{key under url: size}`` as the store lists them now."""
        fs = self.filesystem()
        root = url[len("s3://"):].rstrip("/")
        try:
            found = fs.find(root, detail=True)
        except FileNotFoundError:
            return {}
        return {name[len(root) + 1:]: int(info["size"]) for name, info in found.items()}
