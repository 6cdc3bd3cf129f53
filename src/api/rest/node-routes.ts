import type { FastifyInstance } from 'fastify';
import type { NodeService, NodeView } from '../../service/node-service.ts';
import { principalOf } from './authentication.ts';
import { LIST_NODES_SCHEMA } from './schemas.ts';

/** `GET /v1/nodes`: the nodes of the cluster (docs/cluster.md), admins and viewers. */
export function registerNodeRoutes(app: FastifyInstance, nodes: NodeService): void {
  app.get('/v1/nodes', { schema: LIST_NODES_SCHEMA }, async (request) => ({
    nodes: (await nodes.list(principalOf(request))).map(nodeToJson),
  }));
}

function nodeToJson(node: NodeView) {
  return {
    id: node.id,
    url: node.url,
    state: node.state,
    joinedAt: node.joinedAt.toISOString(),
    heartbeatAt: node.heartbeatAt.toISOString(),
    reason: node.reason,
    running: node.running,
    self: node.self,
  };
}
