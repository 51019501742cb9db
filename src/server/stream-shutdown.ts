/**
 * A ConnectRouter wrapper that hands every streaming method the server's shutdown
 * signal (connect links it into the handler's ctx.signal), while unary methods keep
 * theirs: at shutdown long-lived streams end at once, in-flight unary calls finish.
 * It also records the services registered, so reflection lists exactly what is served.
 */
import type { DescMethod, DescService } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import type { ConnectRouter, MethodImpl } from "@connectrpc/connect";

type RpcOptions = Parameters<ConnectRouter["rpc"]>[2];

/** Wraps router; `served` receives each service as it is registered. */
export function withStreamShutdown(router: ConnectRouter, shutdownSignal: AbortSignal, served: DescService[]): ConnectRouter {
  const note = (service: DescService) => {
    if (!served.includes(service)) served.push(service);
  };
  const register = (method: DescMethod, impl: unknown, options: RpcOptions) => {
    note(method.parent);
    const opts = method.methodKind === "unary" ? options : { ...options, shutdownSignal };
    router.rpc(method, impl as MethodImpl<DescMethod>, opts);
  };
  const wrapped: ConnectRouter = {
    get handlers() {
      return router.handlers;
    },
    service(service, implementation, options) {
      note(service);
      for (const method of service.methods) {
        const impl = (implementation as Record<string, unknown>)[method.localName];
        register(method, typeof impl === "function" ? impl.bind(implementation) : unimplemented(method), options);
      }
      return wrapped;
    },
    rpc(method, impl, options) {
      register(method, impl, options);
      return wrapped;
    },
  };
  return wrapped;
}

/** What connect itself registers for a method a service object leaves out. */
function unimplemented(method: DescMethod): unknown {
  const error = () => new ConnectError(`${method.parent.typeName}.${method.name} is not implemented`, Code.Unimplemented);
  if (method.methodKind === "unary" || method.methodKind === "client_streaming") {
    return () => Promise.reject(error());
  }
  // eslint-disable-next-line require-yield
  return async function* () {
    throw error();
  };
}
