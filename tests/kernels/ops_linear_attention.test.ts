// The op table's linear and attention rows against the CPU (tests/kernels/ops.test.ts runs the rest).
import { LINEAR_ATTENTION_OPS, opTableSuite } from './op_table_suite.ts';

opTableSuite('kernels vs CPU reference', (c) => LINEAR_ATTENTION_OPS.has(c.op));
