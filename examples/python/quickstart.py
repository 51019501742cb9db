"""A Python client of agentorch, with Debian's python3-grpcio and the modules that
generate.sh makes: register and start an agent, watch it while it is stopped, run a task
and follow it with WatchTask, and send, stream and acknowledge A2A messages.

    ./examples/python/generate.sh /tmp/agentorch_py
    python3 examples/python/quickstart.py --gen /tmp/agentorch_py --addr 127.0.0.1:50051

Set AGENTORCH_TOKEN when the service has operator tokens. Prints one JSON line of what it
saw (the test in test/e2e/python-client.test.ts reads it).
"""
import argparse
import json
import os
import queue
import sys
import threading
import uuid

parser = argparse.ArgumentParser()
parser.add_argument("--addr", default=os.environ.get("AGENTORCH_ADDR", "127.0.0.1:50051"))
parser.add_argument("--gen", default="agentorch_py", help="where generate.sh wrote the modules")
parser.add_argument("--image", default="agentorch/busybox:test")
args = parser.parse_args()
sys.path.insert(0, args.gen)

import grpc  # noqa: E402
from google.protobuf import json_format  # noqa: E402
from agentorch.v1 import a2a_pb2, agent_pb2, events_pb2, task_pb2  # noqa: E402
from agentorch.v1 import lifecycle_service_pb2 as life  # noqa: E402
from agentorch.v1 import lifecycle_service_pb2_grpc as life_grpc  # noqa: E402
from agentorch.v1 import orchestrator_service_pb2 as orch  # noqa: E402
from agentorch.v1 import orchestrator_service_pb2_grpc as orch_grpc  # noqa: E402

token = os.environ.get("AGENTORCH_TOKEN")
metadata = [("authorization", f"Bearer {token}")] if token else []
channel = grpc.insecure_channel(args.addr)
agents = orch_grpc.AgentOrchestratorServiceStub(channel)
lifecycle = life_grpc.LifecycleServiceStub(channel)
seen = {}
suffix = uuid.uuid4().hex[:8]
worker, peer = f"py-worker-{suffix}", f"py-peer-{suffix}"


def status_name(value):
    return agent_pb2.AgentStatus.Name(value)


# 1. Register and start an agent: a hardened container with no network.
agents.RegisterAgent(
    orch.RegisterAgentRequest(agent=agent_pb2.AgentConfig(agent_id=worker, image=args.image, command=["sleep", "300"])),
    metadata=metadata, timeout=30,
)
started = agents.StartAgent(orch.StartAgentRequest(agent_id=worker), metadata=metadata, timeout=60)
seen["started"] = status_name(started.agent.status)

# 2. Watch it (current state first, then changes) while another call stops it.
events = queue.Queue()
watch = agents.WatchAgents(
    orch.WatchAgentsRequest(agent_ids=[worker], send_initial_state=True), metadata=metadata, timeout=60,
)


def read_watch():
    try:
        for response in watch:
            event = response.event
            if event.type == events_pb2.EVENT_TYPE_BOOKMARK:
                events.put(("bookmark", event.revision))
            else:
                events.put((status_name(event.agent.status), event.revision))
    except grpc.RpcError as err:
        events.put(("end", err.code().name))


threading.Thread(target=read_watch, daemon=True).start()
watched = []
while True:
    kind, _ = events.get(timeout=30)
    watched.append(kind)
    if kind == "bookmark":  # the initial state is complete: now stop the agent
        agents.StopAgent(orch.StopAgentRequest(agent_id=worker), metadata=metadata, timeout=60)
    if kind == "AGENT_STATUS_IDLE" and "bookmark" in watched:
        break
watch.cancel()
seen["watched"] = watched

# 3. A task on an ephemeral agent; WatchTask follows it to its end.
script = 'echo "goal: $AGENTORCH_GOAL"; echo "{\\"ok\\": true}" > "$AGENTORCH_RESULT_FILE"'
submitted = lifecycle.SubmitTask(
    life.SubmitTaskRequest(
        directive=task_pb2.Directive(goal="say hello from Python", constraints=["be brief"]),
        template=task_pb2.TaskTemplate(image=args.image, command=["sh", "-c", script]),
        priority=task_pb2.TASK_PRIORITY_HIGH,
    ),
    metadata=metadata, timeout=30,
)
states = []
last = None
for update in lifecycle.WatchTask(life.WatchTaskRequest(task_id=submitted.task.task_id), metadata=metadata, timeout=120):
    states.append(task_pb2.TaskState.Name(update.task.state))
    last = update.task
seen["task_states"] = states
seen["task_output"] = last.result.output
seen["task_data"] = json_format.MessageToDict(last.result.data)

# 4. A2A: send a message to another agent, stream its mailbox, acknowledge it.
agents.RegisterAgent(
    orch.RegisterAgentRequest(agent=agent_pb2.AgentConfig(agent_id=peer, image=args.image, command=["sleep", "300"])),
    metadata=metadata, timeout=30,
)
sent = lifecycle.SendMessage(
    life.SendMessageRequest(message=a2a_pb2.A2AMessage(
        from_agent_id=worker, to_agent_id=peer,
        task_delegation=a2a_pb2.TaskDelegation(task_id="t-1", description="review main.go"),
    )),
    metadata=metadata, timeout=30,
)
mailbox = lifecycle.StreamMessages(life.StreamMessagesRequest(agent_id=peer), metadata=metadata, timeout=30)
first = next(iter(mailbox)).message
mailbox.cancel()
acked = lifecycle.AckMessages(life.AckMessagesRequest(agent_id=peer, up_to_sequence=first.sequence), metadata=metadata, timeout=30)
seen["message"] = {
    "sequence": sent.sequence, "received_sequence": first.sequence,
    "description": first.task_delegation.description, "acknowledged": acked.acknowledged_count,
}

# 5. Errors carry a gRPC code a client can branch on.
try:
    agents.GetAgent(orch.GetAgentRequest(agent_id=f"nope-{suffix}"), metadata=metadata, timeout=10)
except grpc.RpcError as err:
    seen["missing_agent"] = err.code().name

for agent_id in (worker, peer):
    agents.RemoveAgent(orch.RemoveAgentRequest(agent_id=agent_id, delete_workspace=True), metadata=metadata, timeout=60)
print(json.dumps(seen))
