// ctx_cxx.cpp - tattle.h compiled as C++: the scoped macro in a function and
// a method, and a capture.
#include <cstdio>
#include <string>

#include "tattle.h"

struct Handler {
    int serve(const std::string &user)
    {
        TATTLE_SCOPED(0);
        tattle_identify_context(user.c_str());
        tattle_tag_string("lang", "c++");
        return tattle_capture("cxx_event", "{\"ok\":true}");
    }
};

int main()
{
    Handler h;
    int r = h.serve("cxx-user");
    std::printf("capture=%d\n", r);
    return tattle_flush(5000) == 0 ? 0 : 3;
}
