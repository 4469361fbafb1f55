// stale_exception.cpp - an uncaught exception delivered by
// std::rethrow_exception (review finding 12), as futures and promises
// deliver theirs. An older exception is kept alive in an exception_ptr.
// The report must name the exception that terminates the program.
#include <exception>
#include <stdexcept>

int main()
{
    std::exception_ptr keep;
    try {
        throw std::runtime_error("first: thrown, handled, kept for a log");
    } catch (...) {
        keep = std::current_exception();
    }
    std::rethrow_exception(std::make_exception_ptr(std::runtime_error("second: the real uncaught one")));
}
