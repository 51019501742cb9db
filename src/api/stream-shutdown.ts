/**
 * A ConnectRouter wrapper that hands every streaming method the server's shutdown
 * signal (connect links it into the handler's ctx.signal), while unary methods keep
 * theirs: at shutdown long-lived streams end at once, in-flight unary calls finish.
 * Methods a service object leaves out get connect's own UNIMPLEMENTED handler.
 */
import type { DescMethod } from "@bufbuild/protobuf";
import { createServiceImplSpec } from "@connectrpc/connect";
import type { ConnectRouter, MethodImpl } from "@connectrpc/connect";

type RpcOptions = Parameters<ConnectRouter["rpc"]>[2];

/** Wraps router so that the streaming methods registered through it end when shutdownSignal fires. */
export function withStreamShutdown(router: ConnectRouter, shutdownSignal: AbortSignal): ConnectRouter {
  const register = (method: DescMethod, impl: MethodImpl<DescMethod>, options: RpcOptions) => {
    const opts = method.methodKind === "unary" ? options : { ...options, shutdownSignal };
    router.rpc(method, impl, opts);
  };
  const wrapped: ConnectRouter = {
    get handlers() {
      return router.handlers;
    },
    service(service, implementation, options) {
      // connect's own spec: methods bound to the object, missing ones answering UNIMPLEMENTED.
      const spec = createServiceImplSpec(service, implementation);
      for (const method of service.methods) {
        register(method, spec.methods[method.localName as keyof typeof spec.methods]!.impl as MethodImpl<DescMethod>, options);
      }
      return wrapped;
    },
    rpc(method, impl, options) {
      register(method, impl as MethodImpl<DescMethod>, options);
      return wrapped;
    },
  };
  return wrapped;
}
