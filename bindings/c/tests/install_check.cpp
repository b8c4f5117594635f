// Built against an installed accord (pkg-config --cflags --libs accord) with the C++
// wrapper: a one-member cluster in this process, one write and one read.
//
// usage: install_check PORT DATA_DIR
#include <accord.hpp>

#include <iostream>

int main(int argc, char** argv) {
    if (argc != 3) {
        std::cerr << "usage: " << argv[0] << " PORT DATA_DIR\n";
        return 2;
    }
    try {
        auto node = accord::node::start(1, std::string("127.0.0.1:") + argv[1], "", argv[2]);
        auto client = node.client();
        client.put("k", "v");
        auto value = client.get("k");
        bool ok = value && *value == "v";
        node.stop();
        std::cout << "install_check++ " << accord_version() << ": " << (ok ? "ok" : "wrong value")
                  << "\n";
        return ok ? 0 : 1;
    } catch (const accord::error& error) {
        std::cerr << "failed: " << error.what() << "\n";
        return 1;
    }
}
