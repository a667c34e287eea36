"""`python -m wacluster_testenv.cloudapi_main [--host ... --port ... --phone-number-id ...
--messages-per-second ... --token-env ... --app-secret-env ...]`: the local Cloud API as a
standalone server, the entry point of its image (hack/images/cloudapi) that the e2e test of
gateway.mode cloud runs as a pod.

The options are those of `wacluster testenv cloudapi` (cloudapi.add_parser), taken from there
rather than repeated; this entry needs neither the product's CLI nor the rest of the harness, which
the image does not carry. The access token and app secret come from environment variables (by
default CLOUDAPI_ACCESS_TOKEN and CLOUDAPI_APP_SECRET), so a pod takes them from a Secret.
"""

from __future__ import annotations

import argparse
import sys

from wacluster_testenv import cloudapi

PROG = "python -m wacluster_testenv.cloudapi_main"


def parser() -> argparse.ArgumentParser:
    """The `cloudapi` verb's parser on its own."""
    verbs = argparse.ArgumentParser(add_help=False).add_subparsers()
    cloudapi.add_parser(verbs)
    standalone = verbs.choices["cloudapi"]
    standalone.prog = PROG
    return standalone


def main(argv: list[str] | None = None) -> int:
    return cloudapi.serve(parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
