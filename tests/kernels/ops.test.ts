// The op table (tests/kernels/ops.table.ts) against the CPU: every op but linear and attention,
// which tests/kernels/ops_linear_attention.test.ts runs (op_table_suite.ts says why two files).
import { LINEAR_ATTENTION_OPS, opTableSuite } from './op_table_suite.ts';

opTableSuite('kernels vs CPU reference', (c) => !LINEAR_ATTENTION_OPS.has(c.op));
