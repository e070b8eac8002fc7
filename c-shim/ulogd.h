/*
 * ulogd.h: masqlog's own declarations of the ulogd 2.0.x plugin ABI
 * (2.0.5 .. 2.0.9, x86_64 layouts). Debian ships no ulogd headers, so
 * this file states only what masqlog uses. Sizes and offsets are pinned
 * by compile-time assertions on the Rust side (src/ffi.rs).
 */
#ifndef MASQLOG_ULOGD_H
#define MASQLOG_ULOGD_H

#include <stdint.h>

/* key types: the top bit means the value lives behind `ptr` */
#define ULOGD_RET_NONE 0x0000
#define ULOGD_RET_INT8 0x0001
#define ULOGD_RET_INT16 0x0002
#define ULOGD_RET_INT32 0x0003
#define ULOGD_RET_INT64 0x0004
#define ULOGD_RET_UINT8 0x0011
#define ULOGD_RET_UINT16 0x0012
#define ULOGD_RET_UINT32 0x0013
#define ULOGD_RET_UINT64 0x0014
#define ULOGD_RET_BOOL 0x0050
#define ULOGD_RET_IPADDR 0x0100
#define ULOGD_RET_IP6ADDR 0x0200
#define ULOGD_RET_STRING 0x8020
#define ULOGD_RET_RAW 0x8030
#define ULOGD_RET_RAWSTR 0x8040

/* key flags */
#define ULOGD_RETF_NONE 0x0000
#define ULOGD_RETF_VALID 0x0001
#define ULOGD_RETF_FREE 0x0002
#define ULOGD_RETF_NEEDED 0x0004
#define ULOGD_KEYF_OPTIONAL 0x0100
#define ULOGD_KEYF_INACTIVE 0x0200

/* keyset types */
#define ULOGD_DTYPE_NULL 0x0000
#define ULOGD_DTYPE_SOURCE 0x0001
#define ULOGD_DTYPE_RAW 0x0002
#define ULOGD_DTYPE_PACKET 0x0004
#define ULOGD_DTYPE_FLOW 0x0008
#define ULOGD_DTYPE_SUM 0x0010
#define ULOGD_DTYPE_SINK 0x0020

/* interp return values */
#define ULOGD_IRET_OK 0
#define ULOGD_IRET_ERR (-1)
#define ULOGD_IRET_STOP (-2)

/* log levels */
#define ULOGD_DEBUG 1
#define ULOGD_INFO 3
#define ULOGD_NOTICE 5
#define ULOGD_ERROR 7
#define ULOGD_FATAL 8

/* fd events */
#define ULOGD_FD_READ 0x0001

/* config file */
#define CONFIG_KEY_LEN 30
#define CONFIG_VAL_STRING_LEN 225
#define CONFIG_TYPE_INT 0x0001
#define CONFIG_TYPE_STRING 0x0002
#define CONFIG_TYPE_CALLBACK 0x0003
#define CONFIG_OPT_NONE 0x0000
#define CONFIG_OPT_MANDATORY 0x0001
#define CONFIG_OPT_MULTI 0x0002

#define ULOGD_MAX_KEYLEN 31

struct llist_head {
	struct llist_head *next, *prev;
};

struct ulogd_key {
	uint32_t len;
	uint16_t type;
	uint16_t flags;
	char name[ULOGD_MAX_KEYLEN + 1];
	struct {
		uint32_t vendor;
		uint16_t field_id;
	} ipfix;
	char *cim_name;
	union {
		union {
			uint8_t b;
			uint8_t ui8;
			uint16_t ui16;
			uint32_t ui32;
			uint64_t ui64;
			uint32_t ui128[4];
			int8_t i8;
			int16_t i16;
			int32_t i32;
			int64_t i64;
			int32_t i128[4];
			void *ptr;
		} value;
		struct ulogd_key *source;
	} u;
};

struct ulogd_keyset {
	struct ulogd_key *keys;
	unsigned int num_keys;
	unsigned int type;
};

struct config_entry {
	char key[CONFIG_KEY_LEN];
	uint8_t type;
	uint8_t options;
	uint8_t hit;
	uint8_t flag;
	union {
		char string[CONFIG_VAL_STRING_LEN];
		int value;
		int (*parser)(const char *argstr);
	} u;
};

struct config_keyset {
	unsigned int num_ces;
	struct config_entry ces[];
};

struct ulogd_pluginstance;
struct ulogd_pluginstance_stack;

struct ulogd_plugin {
	struct llist_head list;
	char *version;
	char name[ULOGD_MAX_KEYLEN + 1];
	unsigned int id;
	unsigned int usage;
	struct ulogd_keyset input;
	struct ulogd_keyset output;
	int (*interp)(struct ulogd_pluginstance *instance);
	int (*configure)(struct ulogd_pluginstance *instance,
			 struct ulogd_pluginstance_stack *stack);
	int (*start)(struct ulogd_pluginstance *pi);
	int (*stop)(struct ulogd_pluginstance *pi);
	void (*signal)(struct ulogd_pluginstance *instance, int signal);
	struct config_keyset *config_kset;
	unsigned int priv_size;
};

struct ulogd_pluginstance {
	struct llist_head list;
	struct llist_head plist;
	struct ulogd_plugin *plugin;
	struct ulogd_pluginstance_stack *stack;
	char id[ULOGD_MAX_KEYLEN + 1];
	struct ulogd_keyset input;
	struct ulogd_keyset output;
	struct config_keyset *config_kset;
	char private[];
};

struct ulogd_fd {
	struct llist_head list;
	int fd;
	unsigned int when;
	int (*cb)(int fd, unsigned int what, void *data);
	void *data;
};

#endif
