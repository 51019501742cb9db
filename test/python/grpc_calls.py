"""Calls agentorch with Python grpcio and prints what a Python client sees, as JSON.

Usage: python3 grpc_calls.py ADDRESS GEN_DIR CALLS_JSON
  GEN_DIR holds protoc --python_out of proto/ (agentorch/v1/*_pb2.py) and of
  third_party/google/rpc (status_pb2.py, error_details_pb2.py, generated with
  -I third_party/google/rpc so they do not clash with the installed google package).
  CALLS_JSON is a list of {"method": "/pkg.Service/Method", "request": {...proto JSON...}}.
Prints one JSON list: per call, either {"ok": response JSON} or {"code", "message",
"details": [...]} decoded from grpc-status-details-bin (grpcio has no grpc_status here).
"""
import importlib
import json
import sys

import grpc
from google.protobuf import json_format, symbol_database

address, gen_dir, calls_json = sys.argv[1], sys.argv[2], sys.argv[3]
sys.path.insert(0, gen_dir)
for name in ("orchestrator_service", "lifecycle_service"):
    importlib.import_module(f"agentorch.v1.{name}_pb2")
import error_details_pb2  # noqa: E402
import status_pb2  # noqa: E402

symbols = symbol_database.Default()
DETAIL_TYPES = {
    "google.rpc.ErrorInfo": error_details_pb2.ErrorInfo,
    "google.rpc.BadRequest": error_details_pb2.BadRequest,
    "google.rpc.RetryInfo": error_details_pb2.RetryInfo,
}


def method_types(path):
    service, method = path.lstrip("/").split("/")
    pool = symbols.pool
    desc = pool.FindServiceByName(service).methods_by_name[method]
    return symbols.GetSymbol(desc.input_type.full_name), symbols.GetSymbol(desc.output_type.full_name)


def decode_details(trailers):
    raw = dict(trailers or ()).get("grpc-status-details-bin")
    if raw is None:
        return None
    status = status_pb2.Status.FromString(raw)
    out = []
    for any_msg in status.details:
        type_name = any_msg.TypeName()
        cls = DETAIL_TYPES.get(type_name)
        if cls is None:
            out.append({"type": type_name})
            continue
        msg = cls()
        any_msg.Unpack(msg)
        entry = json_format.MessageToDict(msg, preserving_proto_field_name=True)
        entry["type"] = type_name
        out.append(entry)
    return {"status_code": status.code, "status_message": status.message, "details": out}


results = []
with grpc.insecure_channel(address) as channel:
    for call in json.loads(calls_json):
        req_cls, res_cls = method_types(call["method"])
        stub = channel.unary_unary(call["method"], request_serializer=req_cls.SerializeToString, response_deserializer=res_cls.FromString)
        request = json_format.ParseDict(call.get("request", {}), req_cls())
        try:
            response = stub(request, timeout=20)
            results.append({"ok": json_format.MessageToDict(response, preserving_proto_field_name=True)})
        except grpc.RpcError as err:
            entry = {"code": err.code().name, "message": err.details()}
            decoded = decode_details(err.trailing_metadata())
            if decoded is not None:
                entry.update(decoded)
            results.append(entry)
print(json.dumps(results))
