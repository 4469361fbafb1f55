// scoped.cpp - a crash inside a lambda inlined into a member template of a class
// template in a namespace (test_langs.py compiles it with g++ -O2 -g).
#include <cstdio>
namespace geo {
template <typename T> struct Grid {
    T cells[4];
    template <typename F> void each(F f) { for (int i = 0; i < 4; i++) f(cells[i]); }
};
}
__attribute__((noinline)) void run(geo::Grid<long> &g, long *volatile *pp) { g.each([pp](long &c) { **pp += c; }); }
int main() { geo::Grid<long> g{{1, 2, 3, 4}}; long *p = nullptr; run(g, &p); std::printf("%ld\n", *p); }
