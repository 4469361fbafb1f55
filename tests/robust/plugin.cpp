// plugin.cpp - a C++ plugin that a C host dlopens (review finding 2). It
// throws and catches one exception, so the agent's __cxa_throw hook has
// seen a C++ exception; libstdc++ comes in with it, its TLS dynamic.
#include <stdexcept>

extern "C" int plugin_throw_and_catch(void)
{
    try {
        throw std::runtime_error("handled inside the plugin");
    } catch (const std::exception &) {
        return 1;
    }
}
