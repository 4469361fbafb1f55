/* noop_preload.c - a preloaded object that does nothing: the loader's own
 * price for LD_PRELOAD, the baseline bench_startup measures against. */
void tattle_bench_noop(void);
void tattle_bench_noop(void) {}
