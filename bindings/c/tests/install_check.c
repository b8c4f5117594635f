/* Built against an installed accord (pkg-config --cflags --libs accord): a one-member
 * cluster in this process, one write and one read.
 *
 * usage: install_check PORT DATA_DIR
 */
#include <accord.h>

#include <stdio.h>
#include <string.h>

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s PORT DATA_DIR\n", argv[0]);
        return 2;
    }
    if (accord_abi_version() != ACCORD_ABI_VERSION) {
        fprintf(stderr, "ABI %u, header %u\n", accord_abi_version(), ACCORD_ABI_VERSION);
        return 1;
    }
    char listen[32];
    snprintf(listen, sizeof listen, "127.0.0.1:%s", argv[1]);
    accord_node *node = NULL;
    accord_client *client = NULL;
    uint64_t revision = 0;
    bool found = false;
    accord_buf value = {NULL, 0};
    if (accord_node_start(1, listen, "", argv[2], &node) != ACCORD_OK ||
        accord_node_client(node, &client) != ACCORD_OK ||
        accord_kv_put(client, (const uint8_t *)"k", 1, (const uint8_t *)"v", 1, &revision) !=
            ACCORD_OK ||
        accord_kv_get(client, (const uint8_t *)"k", 1, false, &found, &value, &revision) !=
            ACCORD_OK) {
        fprintf(stderr, "failed: %s\n", accord_last_error_message());
        return 1;
    }
    int ok = found && value.len == 1 && value.data[0] == 'v';
    accord_buf_free(value);
    accord_client_free(client);
    accord_node_stop(node);
    accord_node_free(node);
    printf("install_check %s: %s\n", accord_version(), ok ? "ok" : "wrong value");
    return ok ? 0 : 1;
}
