/*
 * shim.h: the functions the C shim exports to the Rust side. Each one only
 * forwards to ulogd; every ulogd symbol is a weak reference, so the same
 * objects link into the `masqlog` binary, where no ulogd exists.
 */
#ifndef MASQLOG_SHIM_H
#define MASQLOG_SHIM_H

#include "ulogd.h"

/* 1 when the library was loaded by a ulogd executable that exports the ABI. */
int masqlog_shim_host_present(void);
/* ulogd_register_plugin(); returns 1 when ulogd accepted (linked) the plugin. */
int masqlog_shim_register(struct ulogd_plugin *plugin);
/* __ulogd_log(level, file, 0, "%s\n", msg): never a caller's format string. */
void masqlog_shim_log(int level, const char *file, const char *msg);
/* config_parse_file(section, kset) */
int masqlog_shim_config_parse(const char *section, struct config_keyset *kset);
/* ulogd_register_fd / ulogd_unregister_fd */
int masqlog_shim_register_fd(struct ulogd_fd *ufd);
void masqlog_shim_unregister_fd(struct ulogd_fd *ufd);
/* the static plugin, for the constructor's registration loop */
struct ulogd_plugin *masqlog_shim_plugin(void);

#endif
