#!/usr/bin/env bash
# Generates the Python client's protobuf and gRPC modules from proto/ (run by
# `npm run generate`; needs Debian's protobuf-compiler and
# protobuf-compiler-grpc). protoc writes absolute imports ("from mcp.metrics.v1
# import ..."), which would clash with the `mcp` package of the MCP Python SDK
# that MCP servers install; they are rewritten to package-relative imports.
set -euo pipefail
cd "$(dirname "$0")/../.."
npx buf generate --template clients/python/buf.gen.yaml
sed -i -E 's/^from mcp\.metrics\.v1 import /from . import /' \
  clients/python/mcp_metrics_client/gen/mcp/metrics/v1/*.py \
  clients/python/mcp_metrics_client/gen/mcp/metrics/v1/*.pyi
