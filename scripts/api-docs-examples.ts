/**
 * The hand-written request examples of docs/api.md, one or more per RPC. They live apart from
 * the generator because a good example needs meaning the proto cannot give: they tell one
 * story (an agent "coder" does work, an agent "reviewer" reviews it). The generator fails when
 * an RPC has no example or an example does not parse as its request message (proto JSON), so
 * neither a new RPC nor a renamed field can leave docs/api.md wrong.
 */

/** A JSON request body for `buf curl -d`, with an optional one-line note shown above it. */
export interface ApiExample {
  note?: string;
  body: Record<string, unknown>;
}

/** A task id as the service assigns them ("task-" and a UUID). */
const TASK_ID = "task-3f0c9a52-8d1e-4b7a-9c1f-2e6b5d4a7c10";

const DELEGATION = {
  fromAgentId: "coder",
  toAgentId: "reviewer",
  taskId: "review-42",
  taskDelegation: {
    taskId: "review-42",
    description: "Review the change in /workspace/patch.diff",
    payload: { files: ["cmd/server/main.go"], baseRef: "main" },
    priority: "TASK_PRIORITY_HIGH",
  },
};

/** Examples by RPC: "agentorch.v1.Service/Method" -> examples (at least one). */
export const API_EXAMPLES: Readonly<Record<string, readonly ApiExample[]>> = {
  "agentorch.v1.AgentOrchestratorService/RegisterAgent": [
    {
      body: {
        agent: {
          agentId: "coder",
          name: "Coding agent",
          image: "agentorch/busybox:test",
          command: ["sh", "-c", "echo ready; sleep 3600"],
          env: { LOG_LEVEL: "debug" },
          policy: "SANDBOX_POLICY_CONTAINER",
          resources: { memoryBytes: "268435456", cpus: 0.5, pidsLimit: "128" },
          lifecycle: { maxIdle: "1800s", maxLifetime: "86400s", restartOnCrash: true, maxRestarts: 3 },
          workspace: { mountPoint: "/workspace" },
        },
      },
    },
  ],
  "agentorch.v1.AgentOrchestratorService/GetAgent": [{ body: { agentId: "coder" } }],
  "agentorch.v1.AgentOrchestratorService/ListAgents": [
    { body: { pageSize: 50, status: "AGENT_STATUS_RUNNING" } },
    { note: "The next page: pass the previous answer's nextPageToken with the same filter.", body: { pageSize: 50, status: "AGENT_STATUS_RUNNING", pageToken: "<nextPageToken>" } },
  ],
  "agentorch.v1.AgentOrchestratorService/StartAgent": [{ body: { agentId: "coder" } }],
  "agentorch.v1.AgentOrchestratorService/StopAgent": [{ body: { agentId: "coder" } }],
  "agentorch.v1.AgentOrchestratorService/RemoveAgent": [{ body: { agentId: "coder", deleteWorkspace: true } }],
  "agentorch.v1.AgentOrchestratorService/GetAgentOutput": [{ body: { agentId: "coder", maxBytes: "4096" } }],
  "agentorch.v1.AgentOrchestratorService/EnforceLifecycle": [{ body: {} }],
  "agentorch.v1.AgentOrchestratorService/WatchAgents": [
    { note: "The current state of two agents, a BOOKMARK, then their changes as they happen:", body: { agentIds: ["coder", "reviewer"], sendInitialState: true } },
    { note: "After a disconnect: every change after the last revision received.", body: { resumeAfterRevision: "1042" } },
  ],
  "agentorch.v1.AgentOrchestratorService/StreamAgentOutput": [{ body: { agentId: "coder", follow: true, tailBytes: "1024" } }],
  "agentorch.v1.AgentOrchestratorService/ReportActivity": [
    { note: "Usually sent by the agent itself, over its socket, with its own token.", body: { agentId: "coder" } },
  ],

  "agentorch.v1.LifecycleService/SubmitTask": [
    {
      note: "On a registered agent:",
      body: {
        agentId: "coder",
        directive: {
          goal: "Add a --verbose flag to the CLI",
          constraints: ["Do not change the public API", "Keep go vet clean"],
          acceptanceCriteria: ["go test ./... passes", "README documents --verbose"],
          originalRequest: "Can we get more logging out of the CLI?",
        },
        priority: "TASK_PRIORITY_HIGH",
        timeout: "600s",
      },
    },
    {
      note: "On an ephemeral agent made from a template (removed when the task ends):",
      body: {
        template: {
          image: "agentorch/busybox:test",
          command: ["sh", "-c", 'echo "$AGENTORCH_GOAL"; echo {\\"ok\\":true} > "$AGENTORCH_RESULT_FILE"'],
          resources: { memoryBytes: "134217728" },
        },
        directive: { goal: "Say hello", acceptanceCriteria: ["prints the goal"] },
        timeout: "60s",
      },
    },
  ],
  "agentorch.v1.LifecycleService/GetTask": [{ body: { taskId: TASK_ID } }],
  "agentorch.v1.LifecycleService/ListTasks": [{ body: { agentId: "coder", state: "TASK_STATE_FAILED", pageSize: 20 } }],
  "agentorch.v1.LifecycleService/CancelTask": [{ body: { taskId: TASK_ID } }],
  "agentorch.v1.LifecycleService/RetryTask": [
    { body: { taskId: TASK_ID, gaps: ["go test ./... passes", "README documents --verbose"] } },
  ],
  "agentorch.v1.LifecycleService/WatchTask": [{ body: { taskId: TASK_ID } }],
  "agentorch.v1.LifecycleService/WatchTasks": [
    { note: "The waiting and running tasks of one agent, a BOOKMARK, then every change:", body: { agentId: "coder", sendInitialState: true } },
    { note: "After a disconnect:", body: { agentId: "coder", resumeAfterRevision: "1042" } },
  ],
  "agentorch.v1.LifecycleService/ReapZombies": [{ body: {} }],
  "agentorch.v1.LifecycleService/GetLifecycleConfig": [{ body: {} }],
  "agentorch.v1.LifecycleService/UpdateLifecycleConfig": [
    {
      note: "In JSON, update_mask is one string of comma-separated lowerCamelCase paths.",
      body: { config: { maxConcurrentTasks: 10, maxExecutionTime: "900s" }, updateMask: "maxConcurrentTasks,maxExecutionTime" },
    },
  ],
  "agentorch.v1.LifecycleService/PublishAgentCard": [
    {
      body: {
        card: {
          agentId: "reviewer",
          name: "Code reviewer",
          description: "Reviews Go and TypeScript changes",
          capabilities: ["code-review", "testing"],
          skills: [{ id: "review.go", name: "Go review", description: "Idiomatic Go, tests, races", tags: ["go", "review"] }],
        },
      },
    },
  ],
  "agentorch.v1.LifecycleService/GetAgentCard": [{ body: { agentId: "reviewer" } }],
  "agentorch.v1.LifecycleService/ListAgentCards": [{ body: { capability: "code-review", skill: "go" } }],
  "agentorch.v1.LifecycleService/SendMessage": [
    { body: { message: DELEGATION } },
    {
      note: "The reviewer answers with the same task_id:",
      body: {
        message: {
          fromAgentId: "reviewer",
          toAgentId: "coder",
          taskId: "review-42",
          resultSharing: { taskId: "review-42", summary: "Two nits, otherwise fine", result: { approved: true, comments: 2 } },
        },
      },
    },
  ],
  "agentorch.v1.LifecycleService/StreamMessages": [{ body: { agentId: "reviewer" } }],
  "agentorch.v1.LifecycleService/AckMessages": [{ body: { agentId: "reviewer", upToSequence: "1" } }],
  "agentorch.v1.LifecycleService/SendAndWait": [{ body: { message: DELEGATION, timeout: "120s" } }],
};
