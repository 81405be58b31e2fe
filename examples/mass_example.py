"""The MASS multistaged-analysis example, nearly verbatim, on this engine.

    python examples/mass_example.py OUT_FILE [async]
"""

import sys

from pipeline import AnalysisFrame, EndOfStream

DOMAINS = ["example.org", "a.io", "sanger.ac.uk", "", "zeromq.org"] * 20


def get_requests(sockets, domains):
    if sockets.sent == len(domains):
        raise EndOfStream
    sockets.send({"domain": domains[sockets.sent]})


def analyze_domain_length(sockets):
    data = sockets.receive()
    domain = data["domain"]
    if domain:
        length = len(domain)
    else:
        length = 0
    data["domain_length"] = length
    sockets.send(data)


async def analyze_domain_length_async(sockets):
    data = await sockets.receive()
    data["domain_length"] = len(data["domain"])
    await sockets.send(data)


def report(sockets, out):
    data = sockets.receive()
    with open(out, "a") as f:
        f.write(f"{data['domain']}\t{data['domain_length']}\n")


if __name__ == "__main__":
    out = sys.argv[1]
    use_async = len(sys.argv) > 2 and sys.argv[2] == "async"
    frame = AnalysisFrame(run_dir=out + ".run")
    frame.add_stage(get_requests, "get_requests", args=(DOMAINS,), next_stage="analyze_domain_length")
    if use_async:
        frame.add_stage(
            analyze_domain_length_async, "analyze_domain_length", concurrency="async",
            next_stage="report", replicas=3,
        )
    else:
        frame.add_stage(analyze_domain_length, "analyze_domain_length", next_stage="report", replicas=2)
    frame.add_stage(report, "report", args=(out,))
    frame.start_all_stages()
