// Resident memory of a process tree (Chromium's), sampled from /proc every ~100 ms: VmRSS of the
// root and each descendant, each process classed by its command line (--type=renderer,
// --type=gpu-process, --type=utility, --type=zygote; none: the browser process itself). Phases
// (idle, visit 1, ...) are marked as the bench goes, and each phase's peaks are read afterwards.
// Linux only.
import { readdirSync, readFileSync } from 'node:fs';

export type ProcClass = string;

export interface Sample {
  /** ms since the sampler started. */
  t: number;
  /** Sum of VmRSS (bytes) per class. */
  byClass: Record<ProcClass, number>;
  /** VmRSS (bytes) per pid. */
  byPid: Record<number, number>;
  total: number;
}

export interface PhaseStats {
  phase: string;
  samples: number;
  ms: number;
  /** Peak of the class's sum over the phase, bytes. */
  peakByClass: Record<ProcClass, number>;
  /** The largest single process of each class, bytes. */
  peakProcessByClass: Record<ProcClass, number>;
  /** Median of the class's sum over the phase (the idle level of an idle phase), bytes. */
  medianByClass: Record<ProcClass, number>;
  /** Peak of the sum over every process, bytes. */
  peakTotal: number;
  medianTotal: number;
  /** Peak and median of each process over the phase, bytes. */
  peakByPid: Record<number, number>;
  medianByPid: Record<number, number>;
}

/**
 * The class of a Chromium process from its command line (Chromium rewrites its argv into one
 * space-separated string, so the words are looked for in the joined line).
 */
export function classify(cmdline: string): ProcClass {
  const type = /(?:^|\s)--type=(\S+)/.exec(cmdline)?.[1];
  if (type) return type;
  if (/crashpad_handler/.test(cmdline.split(/\s/)[0] ?? '')) return 'crashpad';
  return 'browser';
}

function readStatus(pid: number): number | null {
  try {
    const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : 0; // a zombie has no VmRSS
  } catch {
    return null; // gone
  }
}

function parentOf(pid: number): number | null {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // pid (comm) state ppid ...: comm may hold spaces and parentheses; the last ')' ends it.
    return Number(s.slice(s.lastIndexOf(')') + 2).split(' ')[1]);
  } catch {
    return null;
  }
}

/** The root and every process below it. */
export function processTree(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const pid = Number(name);
    const ppid = parentOf(pid);
    if (ppid === null) continue;
    const list = children.get(ppid);
    if (list) list.push(pid);
    else children.set(ppid, [pid]);
  }
  const out: number[] = [];
  const todo = [root];
  while (todo.length) {
    const p = todo.pop()!;
    out.push(p);
    todo.push(...(children.get(p) ?? []));
  }
  return out;
}

const median = (xs: number[]) => {
  if (!xs.length) return 0;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
};

export class TreeSampler {
  readonly samples: Sample[] = [];
  readonly classes = new Map<number, ProcClass>();
  readonly commands = new Map<number, string>();
  private readonly phases: { phase: string; from: number }[] = [];
  private timer: NodeJS.Timeout | null = null;
  private readonly t0 = performance.now();

  constructor(
    private readonly root: number,
    private readonly everyMs = 100,
  ) {}

  start(phase = 'start'): this {
    this.mark(phase);
    this.sample();
    this.timer = setInterval(() => this.sample(), this.everyMs);
    return this;
  }

  /** Starts a new phase now; samples from here on belong to it. */
  mark(phase: string): void {
    this.sample();
    this.phases.push({ phase, from: this.samples.length });
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.sample();
  }

  sample(): void {
    const s: Sample = { t: performance.now() - this.t0, byClass: {}, byPid: {}, total: 0 };
    for (const pid of processTree(this.root)) {
      const rss = readStatus(pid);
      if (rss === null) continue;
      if (!this.classes.has(pid)) {
        let cmd: string;
        try {
          cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ').trim();
        } catch {
          continue;
        }
        this.classes.set(pid, classify(cmd));
        const words = cmd.split(/\s+/);
        this.commands.set(pid, [words[0] ?? '', ...words.filter((w) => /^--(type|utility-sub-type|top-chrome-webui|renderer-client-id)\b/.test(w))].join(' '));
      }
      const cls = this.classes.get(pid)!;
      s.byPid[pid] = rss;
      s.byClass[cls] = (s.byClass[cls] ?? 0) + rss;
      s.total += rss;
    }
    this.samples.push(s);
  }

  /** Peaks and medians of each phase marked so far. */
  stats(): PhaseStats[] {
    return this.phases.map((p, i) => {
      const until = this.phases[i + 1]?.from ?? this.samples.length;
      // The sample that mark() took belongs to both sides: a phase starts from where the last ended.
      const ss = this.samples.slice(Math.max(0, p.from - 1), until);
      const classes = new Set(ss.flatMap((s) => Object.keys(s.byClass)));
      const peakByClass: Record<string, number> = {};
      const peakProcessByClass: Record<string, number> = {};
      const medianByClass: Record<string, number> = {};
      for (const c of classes) {
        peakByClass[c] = Math.max(...ss.map((s) => s.byClass[c] ?? 0));
        medianByClass[c] = median(ss.map((s) => s.byClass[c] ?? 0));
        peakProcessByClass[c] = Math.max(0, ...ss.flatMap((s) => Object.entries(s.byPid).filter(([pid]) => this.classes.get(Number(pid)) === c).map(([, v]) => v)));
      }
      const pids = new Set(ss.flatMap((s) => Object.keys(s.byPid).map(Number)));
      const peakByPid: Record<number, number> = {};
      const medianByPid: Record<number, number> = {};
      for (const pid of pids) {
        const xs = ss.map((s) => s.byPid[pid]).filter((v): v is number => v !== undefined);
        peakByPid[pid] = Math.max(...xs);
        medianByPid[pid] = median(xs);
      }
      return {
        phase: p.phase,
        samples: ss.length,
        ms: ss.length ? ss[ss.length - 1]!.t - ss[0]!.t : 0,
        peakByClass,
        peakProcessByClass,
        medianByClass,
        peakTotal: Math.max(0, ...ss.map((s) => s.total)),
        medianTotal: median(ss.map((s) => s.total)),
        peakByPid,
        medianByPid,
      };
    });
  }

  /** [t s, renderer MiB, gpu-process MiB, all MiB] every `stepMs`, for the result file. */
  series(stepMs = 1000): [number, number, number, number][] {
    const out: [number, number, number, number][] = [];
    let next = 0;
    const mib = (b: number) => Math.round(b / 2 ** 20);
    for (const s of this.samples) {
      if (s.t < next) continue;
      next = s.t + stepMs;
      out.push([Math.round(s.t / 100) / 10, mib(s.byClass.renderer ?? 0), mib(s.byClass['gpu-process'] ?? 0), mib(s.total)]);
    }
    return out;
  }
}
