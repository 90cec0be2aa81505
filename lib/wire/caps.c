/* VERSION capabilities: the JSON document each side sends after major/minor. */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "wire.h"

/* Bounds on what a peer may state; outside them the document is refused.
 *
 * max_msg_fds: libvfio-user accepts up to 1024, so no real peer asks more.
 * max_data_xfer_size: 1 GiB. A transfer travels in one message whose size
 *   field is 32 bits, and no peer buffers more than a few MiB; anything
 *   beyond 1 GiB is a bogus value, not a real limit. 0 would forbid all
 *   region/DMA data, so it is refused as well.
 * pgsizes: an OR of page sizes. Nonzero, and no size below 4 KiB (bits
 *   0-11 clear): no IOMMU maps smaller pages, QEMU refuses such values too,
 *   and it catches json-c saturating an overlong number to all ones.
 * max_dma_maps: 1..INT32_MAX, so the value fits every int counter.
 * twin_socket.fd_index: an index into at most max_msg_fds descriptors. */
#define CAPS_MAX_MSG_FDS 1024
#define CAPS_MAX_DATA_XFER (1u << 30)
#define CAPS_MIN_PGSIZE 4096u
#define CAPS_MAX_DMA_MAPS INT32_MAX
#define CAPS_MAX_FD_INDEX (CAPS_MAX_MSG_FDS - 1)

/* The documents are two or three levels deep; deeper unknown keys are
 * allowed up to this much nesting before the parser gives up. */
#define CAPS_JSON_DEPTH 16

void wire_caps_default(struct wire_caps *c)
{
	c->max_msg_fds = VFU_DEFAULT_MAX_FDS;
	c->max_data_xfer_size = VFU_DEFAULT_MAX_DATA_XFER;
	c->pgsizes = VFU_DEFAULT_PGSIZES;
	c->max_dma_maps = VFU_DEFAULT_MAX_DMA_MAPS;
	c->twin_socket = false;
	c->write_multiple = false;
	c->twin_fd_index = -1;
}

/* An integer in [lo, hi]. json-c saturates overlong numbers to the int64
 * limits, so those fail the range check rather than wrapping. */
static int get_int(struct json_object *o, int64_t lo, int64_t hi, int64_t *out)
{
	if (!json_object_is_type(o, json_type_int))
		return -EINVAL;
	int64_t v = json_object_get_int64(o);
	if (v < lo || v > hi)
		return -EINVAL;
	*out = v;
	return 0;
}

static int get_bool(struct json_object *o, bool *out)
{
	if (!json_object_is_type(o, json_type_boolean))
		return -EINVAL;
	*out = json_object_get_boolean(o);
	return 0;
}

static int get_pgsizes(struct json_object *o, uint64_t *out)
{
	if (!json_object_is_type(o, json_type_int))
		return -EINVAL;
	/* Values above INT64_MAX are kept unsigned by json-c; negative ones
	 * must be caught before reading it that way. */
	if (json_object_get_int64(o) < 0)
		return -EINVAL;
	uint64_t v = json_object_get_uint64(o);
	if (v == 0 || (v & (CAPS_MIN_PGSIZE - 1)))
		return -EINVAL;
	*out = v;
	return 0;
}

/* The spec's and libvfio-user's form is {"supported": bool[, "fd_index": n]}
 * (fd_index only in a server's answer); a bare boolean is accepted as well,
 * since it cannot mean anything else. */
static int get_twin(struct json_object *o, struct wire_caps *c)
{
	if (json_object_is_type(o, json_type_boolean))
		return get_bool(o, &c->twin_socket);
	if (!json_object_is_type(o, json_type_object))
		return -EINVAL;
	struct json_object *v;
	bool supported = false;
	int64_t idx = -1;
	if (json_object_object_get_ex(o, "supported", &v) && get_bool(v, &supported))
		return -EINVAL;
	if (json_object_object_get_ex(o, "fd_index", &v) &&
	    get_int(v, 0, CAPS_MAX_FD_INDEX, &idx))
		return -EINVAL;
	c->twin_socket = supported;
	c->twin_fd_index = (int)idx;
	return 0;
}

static int parse_capabilities(struct json_object *caps, struct wire_caps *c)
{
	struct json_object *v;
	int64_t n;

	if (!json_object_is_type(caps, json_type_object))
		return -EINVAL;
	if (json_object_object_get_ex(caps, "max_msg_fds", &v)) {
		if (get_int(v, 0, CAPS_MAX_MSG_FDS, &n))
			return -EINVAL;
		c->max_msg_fds = (uint32_t)n;
	}
	if (json_object_object_get_ex(caps, "max_data_xfer_size", &v)) {
		if (get_int(v, 1, CAPS_MAX_DATA_XFER, &n))
			return -EINVAL;
		c->max_data_xfer_size = (uint32_t)n;
	}
	if (json_object_object_get_ex(caps, "pgsizes", &v) && get_pgsizes(v, &c->pgsizes))
		return -EINVAL;
	if (json_object_object_get_ex(caps, "max_dma_maps", &v)) {
		if (get_int(v, 1, CAPS_MAX_DMA_MAPS, &n))
			return -EINVAL;
		c->max_dma_maps = (uint32_t)n;
	}
	if (json_object_object_get_ex(caps, "twin_socket", &v) && get_twin(v, c))
		return -EINVAL;
	if (json_object_object_get_ex(caps, "write_multiple", &v) &&
	    get_bool(v, &c->write_multiple))
		return -EINVAL;
	/* Migration parameters (dirty page size, bitmap size) concern a
	 * feature negotiated elsewhere; only the shape is checked. */
	if (json_object_object_get_ex(caps, "migration", &v) &&
	    !json_object_is_type(v, json_type_object))
		return -EINVAL;
	return 0;
}

static bool all_space(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] != ' ' && s[i] != '\t' && s[i] != '\n' && s[i] != '\r')
			return false;
	return true;
}

/* json-c's strict mode still takes single-quoted strings, which JSON does
 * not have: a quote character outside a double-quoted string is refused. */
static bool only_double_quotes(const char *s, size_t n)
{
	bool in_str = false;
	for (size_t i = 0; i < n; i++) {
		if (in_str) {
			if (s[i] == '\\')
				i++;   /* the escaped character cannot end the string */
			else if (s[i] == '"')
				in_str = false;
		} else if (s[i] == '"') {
			in_str = true;
		} else if (s[i] == '\'') {
			return false;
		}
	}
	return true;
}

int wire_caps_parse(const char *json, size_t len, struct wire_caps *out)
{
	struct wire_caps c;

	if (!out)
		return -EINVAL;
	wire_caps_default(&c);
	if (len == 0) {
		*out = c;
		return 0;
	}
	if (!json)
		return -EINVAL;
	/* The spec sends the NUL; without one the peer framed it wrong. */
	const char *nul = memchr(json, '\0', len);
	if (!nul)
		return -EINVAL;
	size_t n = (size_t)(nul - json);
	if (n > INT_MAX)
		return -EINVAL;   /* json_tokener takes an int length */
	if (!only_double_quotes(json, n))
		return -EINVAL;

	struct json_tokener *tok = json_tokener_new_ex(CAPS_JSON_DEPTH);
	if (!tok)
		return -ENOMEM;
	int flags = JSON_TOKENER_STRICT;
#ifdef JSON_TOKENER_VALIDATE_UTF8
	flags |= JSON_TOKENER_VALIDATE_UTF8;   /* the spec says UTF-8 */
#endif
	json_tokener_set_flags(tok, flags);
	struct json_object *root = json_tokener_parse_ex(tok, json, (int)n);
	int rc = -EINVAL;
	/* An incomplete document leaves the tokener asking for more
	 * (json_tokener_continue) and root NULL: refused like any error. */
	if (root && json_tokener_get_error(tok) == json_tokener_success) {
		size_t end = json_tokener_get_parse_end(tok);
		if (end <= n && all_space(json + end, n - end) &&
		    json_object_is_type(root, json_type_object)) {
			struct json_object *caps;
			rc = 0;
			/* Other top-level keys are ignored, like unknown caps. */
			if (json_object_object_get_ex(root, "capabilities", &caps))
				rc = parse_capabilities(caps, &c);
		}
	}
	json_object_put(root);
	json_tokener_free(tok);
	if (rc == 0)
		*out = c;
	return rc;
}

char *wire_caps_format(const struct wire_caps *c)
{
	char twin[64] = "";
	char buf[320];

	if (!c)
		return NULL;
	if (c->twin_socket && c->twin_fd_index >= 0)
		snprintf(twin, sizeof(twin), ",\"twin_socket\":{\"supported\":true,\"fd_index\":%d}",
			 c->twin_fd_index);
	else if (c->twin_socket)
		snprintf(twin, sizeof(twin), ",\"twin_socket\":{\"supported\":true}");
	int n = snprintf(buf, sizeof(buf),
			 "{\"capabilities\":{\"max_msg_fds\":%" PRIu32
			 ",\"max_data_xfer_size\":%" PRIu32 ",\"pgsizes\":%" PRIu64
			 ",\"max_dma_maps\":%" PRIu32 "%s%s}}",
			 c->max_msg_fds, c->max_data_xfer_size, c->pgsizes, c->max_dma_maps,
			 c->write_multiple ? ",\"write_multiple\":true" : "", twin);
	/* Every field is bounded, so this cannot truncate; checked anyway. */
	if (n < 0 || (size_t)n >= sizeof(buf))
		return NULL;
	return strdup(buf);
}
