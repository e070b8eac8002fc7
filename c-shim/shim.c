/*
 * shim.c: the MASQLOG plugin as ulogd sees it: a writable static
 * struct ulogd_plugin, its keysets (generated from src/keys.rs), the ELF
 * constructor that registers it, and forwarders to ulogd's symbols.
 * Every decision lives in Rust (src/ffi.rs).
 */
#include <stddef.h>
#include <stdio.h>
#include "shim.h"
#include "masqlog_keys.h"

/* ulogd's symbols: weak, so that the binary links without them. */
extern void ulogd_register_plugin(struct ulogd_plugin *me) __attribute__((weak));
extern void __ulogd_log(int level, char *file, int line, const char *message, ...)
	__attribute__((weak, format(printf, 4, 5)));
extern int config_parse_file(const char *section, struct config_keyset *kset)
	__attribute__((weak));
extern int ulogd_register_fd(struct ulogd_fd *ufd) __attribute__((weak));
extern void ulogd_unregister_fd(struct ulogd_fd *ufd) __attribute__((weak));

/* Rust entry points (src/ffi.rs) */
extern int masqlog_rs_interp(struct ulogd_pluginstance *pi);
extern int masqlog_rs_configure(struct ulogd_pluginstance *pi,
				struct ulogd_pluginstance_stack *stack);
extern int masqlog_rs_start(struct ulogd_pluginstance *pi);
extern int masqlog_rs_stop(struct ulogd_pluginstance *pi);
extern void masqlog_rs_signal(struct ulogd_pluginstance *pi, int signal);
extern void masqlog_rs_register(void);

static struct config_keyset masqlog_kset = {
	.num_ces = MASQLOG_NUM_CONF_KEYS,
	.ces = MASQLOG_CONF_KEYS_INIT,
};

static struct ulogd_key masqlog_inp[] = MASQLOG_INPUT_KEYS_INIT;

static struct ulogd_plugin masqlog_plugin = {
	.name = "MASQLOG",
	.input = {
		.keys = masqlog_inp,
		.num_keys = MASQLOG_NUM_INPUT_KEYS,
		.type = ULOGD_DTYPE_FLOW,
	},
	.output = {
		.type = ULOGD_DTYPE_SINK,
	},
	.interp = masqlog_rs_interp,
	.configure = masqlog_rs_configure,
	.start = masqlog_rs_start,
	.stop = masqlog_rs_stop,
	.signal = masqlog_rs_signal,
	.config_kset = &masqlog_kset,
	/* one pointer to the Rust instance; a multiple of 8 as ulogd needs */
	.priv_size = sizeof(void *),
	.version = MASQLOG_ULOGD_VERSION,
};

struct ulogd_plugin *masqlog_shim_plugin(void)
{
	return &masqlog_plugin;
}

int masqlog_shim_host_present(void)
{
	return ulogd_register_plugin != NULL && __ulogd_log != NULL &&
	       config_parse_file != NULL && ulogd_register_fd != NULL &&
	       ulogd_unregister_fd != NULL;
}

int masqlog_shim_register(struct ulogd_plugin *plugin)
{
	if (ulogd_register_plugin == NULL)
		return 0;
	plugin->list.next = NULL;
	ulogd_register_plugin(plugin);
	/* ulogd links an accepted plugin into its list */
	return plugin->list.next != NULL;
}

void masqlog_shim_log(int level, const char *file, const char *msg)
{
	if (__ulogd_log != NULL)
		__ulogd_log(level, (char *)file, 0, "%s\n", msg);
	else
		fprintf(stderr, "%s\n", msg);
}

int masqlog_shim_config_parse(const char *section, struct config_keyset *kset)
{
	if (config_parse_file == NULL)
		return -1;
	return config_parse_file(section, kset);
}

int masqlog_shim_register_fd(struct ulogd_fd *ufd)
{
	if (ulogd_register_fd == NULL)
		return -1;
	return ulogd_register_fd(ufd);
}

void masqlog_shim_unregister_fd(struct ulogd_fd *ufd)
{
	if (ulogd_unregister_fd != NULL)
		ulogd_unregister_fd(ufd);
}

__attribute__((constructor)) static void masqlog_shim_ctor(void)
{
	if (!masqlog_shim_host_present())
		return;
	masqlog_rs_register();
}
