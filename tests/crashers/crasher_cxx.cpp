// crasher_cxx.cpp - an uncaught C++ exception, several calls deep.
#include <cstdio>
#include <stdexcept>
#include <string>

namespace config {

struct Loader {
    int minimum;
    __attribute__((noinline)) void check(int value)
    {
        if (value < minimum)
            throw std::runtime_error("config value too small");
    }
};

__attribute__((noinline)) void load(int value)
{
    Loader l{10};
    l.check(value);
}

} // namespace config

struct NotAnException {
    int code;
};

int main(int argc, char **argv)
{
    std::printf("crasher_cxx: %s\n", argc > 1 ? argv[1] : "throw");
    std::fflush(stdout);
    try {
        config::load(100); // caught throws must never be reported
        throw std::logic_error("caught");
    } catch (const std::exception &) {
    }
    if (argc > 1 && std::string(argv[1]) == "throw-int")
        throw NotAnException{7};
    config::load(3);
    return 0;
}
