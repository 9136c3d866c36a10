#!/usr/bin/env python3
"""Script lvs-dr agents from Python, over the public contract (lvs.agent.v1).

Generate the stubs once with the reference compiler (Debian: protobuf-compiler,
protobuf-compiler-grpc, python3-grpcio, python3-protobuf):

    protoc -I proto/proto --python_out=stubs --grpc_python_out=stubs \
        --plugin=protoc-gen-grpc_python=/usr/bin/grpc_python_plugin lvs/agent/v1/agent.proto

Give it a certificate from `lvsctl pki issue-admin NAME --role viewer --out DIR` (a viewer
reads; only an admin changes anything), then:

    agent_client.py --stubs stubs --pki DIR rs1=198.18.0.11:7443 rs2=198.18.0.12:7443

It prints one JSON document: each node's facts and status, as a dashboard or an inventory
script would use them. `--try-apply` also sends an (empty) Apply and prints the answer's
status code: a viewer's is PERMISSION_DENIED.
"""
import argparse
import json
import pathlib
import sys

import grpc


def channel(address, node, pki):
    """A mutual-TLS channel to one agent. The agent's certificate names the node, not its
    address, so the name checked is the node's."""
    read = lambda name: (pki / name).read_bytes()
    creds = grpc.ssl_channel_credentials(
        root_certificates=read("ca.pem"),
        private_key=read("controller.key"),
        certificate_chain=read("controller.pem"),
    )
    return grpc.secure_channel(address, creds, options=[("grpc.ssl_target_name_override", node)])


def node_report(pb, rpc, address, node, pki, try_apply, timeout):
    """Facts and status of one node (and, if asked, what an Apply gets)."""
    with channel(address, node, pki) as ch:
        agent = rpc.AgentStub(ch)
        facts = agent.Facts(pb.FactsRequest(), timeout=timeout)
        status = agent.Status(pb.StatusRequest(), timeout=timeout)
        out = {
            "node": facts.node,
            "kernel": facts.kernel,
            "agent_version": facts.agent_version,
            "ipvs": facts.ipvs,
            "has_spec": status.has_spec,
            "generation": status.generation,
            "drift": len(status.drift),
            "checks": {c.check: c.ok for c in status.checks},
            "vrrp": pb.VrrpState.Name(status.vrrp.state) if status.HasField("vrrp") else None,
        }
        if try_apply:
            try:
                agent.Apply(pb.SpecRequest(spec=pb.NodeSpec(node=node)), timeout=timeout)
                out["apply"] = {"code": "OK"}
            except grpc.RpcError as e:
                out["apply"] = {"code": e.code().name, "details": e.details()}
        return out


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--stubs", required=True, type=pathlib.Path, help="where protoc wrote the stubs")
    p.add_argument("--pki", required=True, type=pathlib.Path, help="ca.pem, controller.pem, controller.key")
    p.add_argument("--try-apply", action="store_true", help="also send an empty Apply")
    p.add_argument("--timeout", type=float, default=5.0, help="seconds per call")
    p.add_argument("nodes", nargs="+", metavar="NODE=ADDRESS:PORT")
    args = p.parse_args()
    sys.path.insert(0, str(args.stubs))
    from lvs.agent.v1 import agent_pb2 as pb
    from lvs.agent.v1 import agent_pb2_grpc as rpc

    report = []
    for item in args.nodes:
        node, _, address = item.partition("=")
        try:
            report.append(node_report(pb, rpc, address, node, args.pki, args.try_apply, args.timeout))
        except grpc.RpcError as e:
            report.append({"node": node, "error": e.code().name, "details": e.details()})
    json.dump(report, sys.stdout, indent=2)
    print()
    return 1 if any("error" in r for r in report) else 0


if __name__ == "__main__":
    sys.exit(main())
