/*
 * noop.c: the benchmark's floor, a ulogd output plugin NOOP that reads the
 * same NFCT input keys as MASQLOG and does nothing with them. A stack
 * NFCT -> NOOP costs what ulogd and the NFCT input cost per event; what an
 * output adds is its CPU time above this one's.
 *
 * Declarations: masqlog's own c-shim/ulogd.h. The version string must be
 * ulogd's own (`ulogd -V`), given at build time:
 *   gcc -O2 -shared -fPIC -I../c-shim -DNOOP_ULOGD_VERSION='"2.0.8"' \
 *       -o ulogd_output_NOOP.so noop.c
 * At stop it logs "NOOP[id] events=N" (the events it was handed).
 */
#include <stddef.h>
#include <stdint.h>
#include "ulogd.h"

#ifndef NOOP_ULOGD_VERSION
#error "define NOOP_ULOGD_VERSION to the string `ulogd -V` prints"
#endif

extern void ulogd_register_plugin(struct ulogd_plugin *me);
extern void __ulogd_log(int level, char *file, int line, const char *fmt, ...);

#define KEY(n, t, f) { .type = (t), .flags = (f), .name = (n) }
#define REQ ULOGD_RETF_NONE
#define OPT ULOGD_KEYF_OPTIONAL

/* the keys MASQLOG reads (src/keys.rs INPUT_KEYS), the same optionality */
static struct ulogd_key noop_inp[] = {
	KEY("oob.family", ULOGD_RET_UINT8, REQ),
	KEY("orig.ip.saddr", ULOGD_RET_IPADDR, REQ),
	KEY("orig.ip.daddr", ULOGD_RET_IPADDR, REQ),
	KEY("reply.ip.saddr", ULOGD_RET_IPADDR, REQ),
	KEY("reply.ip.daddr", ULOGD_RET_IPADDR, REQ),
	KEY("orig.ip.protocol", ULOGD_RET_UINT8, REQ),
	KEY("orig.l4.sport", ULOGD_RET_UINT16, OPT),
	KEY("orig.l4.dport", ULOGD_RET_UINT16, OPT),
	KEY("reply.l4.sport", ULOGD_RET_UINT16, OPT),
	KEY("reply.l4.dport", ULOGD_RET_UINT16, OPT),
	KEY("icmp.type", ULOGD_RET_UINT8, OPT),
	KEY("icmp.code", ULOGD_RET_UINT8, OPT),
	KEY("orig.raw.pktlen", ULOGD_RET_UINT64, OPT),
	KEY("orig.raw.pktcount", ULOGD_RET_UINT64, OPT),
	KEY("reply.raw.pktlen", ULOGD_RET_UINT64, OPT),
	KEY("reply.raw.pktcount", ULOGD_RET_UINT64, OPT),
	KEY("ct.id", ULOGD_RET_UINT32, OPT),
	KEY("ct.event", ULOGD_RET_UINT32, OPT),
	KEY("ct.mark", ULOGD_RET_UINT32, OPT),
	KEY("flow.start.sec", ULOGD_RET_UINT32, OPT),
	KEY("flow.start.usec", ULOGD_RET_UINT32, OPT),
	KEY("flow.end.sec", ULOGD_RET_UINT32, OPT),
	KEY("flow.end.usec", ULOGD_RET_UINT32, OPT),
};

#define NUM_KEYS (sizeof(noop_inp) / sizeof(noop_inp[0]))

/* one instance in practice; the counters are plain statics */
static uint64_t events;
static volatile uint64_t sink;

static int noop_interp(struct ulogd_pluginstance *pi)
{
	uint64_t acc = 0;
	for (unsigned i = 0; i < pi->input.num_keys; i++) {
		const struct ulogd_key *k = pi->input.keys[i].u.source;
		if (!k || !(k->flags & ULOGD_RETF_VALID))
			continue;
		switch (k->type) {
		case ULOGD_RET_UINT8:
			acc += k->u.value.ui8;
			break;
		case ULOGD_RET_UINT16:
			acc += k->u.value.ui16;
			break;
		case ULOGD_RET_UINT32:
			acc += k->u.value.ui32;
			break;
		case ULOGD_RET_UINT64:
			acc += k->u.value.ui64;
			break;
		case ULOGD_RET_IPADDR:
		case ULOGD_RET_IP6ADDR:
			acc += k->u.value.ui128[0] ^ k->u.value.ui128[1] ^
			       k->u.value.ui128[2] ^ k->u.value.ui128[3];
			break;
		default:
			acc += (uintptr_t)k->u.value.ptr;
		}
	}
	sink = sink + acc;
	events++;
	return ULOGD_IRET_OK;
}

static int noop_configure(struct ulogd_pluginstance *pi, struct ulogd_pluginstance_stack *stack)
{
	(void)pi;
	(void)stack;
	return 0;
}

static int noop_start(struct ulogd_pluginstance *pi)
{
	(void)pi;
	events = 0;
	return 0;
}

static int noop_stop(struct ulogd_pluginstance *pi)
{
	__ulogd_log(ULOGD_NOTICE, __FILE__, __LINE__, "NOOP[%s] events=%llu\n", pi->id,
		    (unsigned long long)events);
	return 0;
}

static void noop_signal(struct ulogd_pluginstance *pi, int signal)
{
	/* SIGUSR1 (10): the count so far */
	if (signal == 10)
		__ulogd_log(ULOGD_NOTICE, __FILE__, __LINE__, "NOOP[%s] events=%llu\n", pi->id,
			    (unsigned long long)events);
}

static struct ulogd_plugin noop_plugin = {
	.name = "NOOP",
	.input = {
		.keys = noop_inp,
		.num_keys = NUM_KEYS,
		.type = ULOGD_DTYPE_FLOW,
	},
	.output = {
		.type = ULOGD_DTYPE_SINK,
	},
	.interp = noop_interp,
	.configure = noop_configure,
	.start = noop_start,
	.stop = noop_stop,
	.signal = noop_signal,
	.config_kset = NULL,
	.priv_size = 0,
	.version = NOOP_ULOGD_VERSION,
};

__attribute__((constructor)) static void noop_init(void)
{
	ulogd_register_plugin(&noop_plugin);
}
