/*
 * CPLMaster + CPLAsset → struct asset (cloudkit-photos.md §4), and the
 * pairing of halves within and across pages.  Every bad record is reported
 * once, with its recordName, then skipped or degraded; nothing here may
 * crash on hostile JSON.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "cloudkit_p.h"
#include "icpd/asset.h"
#include "icpd/cloudkit.h"
#include "icpd/error.h"
#include "icpd/log.h"
#include "icpd/util.h"
#include "icpd/banned.h"

/* ---------------------------------------------------------------- base64 */

static int b64val(unsigned char c)
{
	if (c >= 'A' && c <= 'Z') {
		return c - 'A';
	}
	if (c >= 'a' && c <= 'z') {
		return c - 'a' + 26;
	}
	if (c >= '0' && c <= '9') {
		return c - '0' + 52;
	}
	if (c == '+') {
		return 62;
	}
	if (c == '/') {
		return 63;
	}
	return -1;
}

int cloudkit_b64decode(const char *in, unsigned char **out, size_t *len)
{
	size_t n = strlen(in), o = 0, q = 0, pad = 0;
	unsigned char *buf = xmalloc(n / 4 * 3 + 4);
	uint32_t acc = 0;

	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)in[i];
		int v;

		if (c == '=') {
			pad++;
			continue;
		}
		v = b64val(c);
		if (v < 0) {
			continue; /* like Python: characters outside the alphabet are dropped */
		}
		if (pad) {
			goto bad; /* data after padding */
		}
		acc = (acc << 6) | (uint32_t)v;
		if (++q == 4) {
			buf[o++] = (unsigned char)(acc >> 16);
			buf[o++] = (unsigned char)(acc >> 8);
			buf[o++] = (unsigned char)acc;
			q = 0;
			acc = 0;
		}
	}
	if (q == 1) {
		goto bad;
	}
	if (q == 2) {
		if (pad < 2) {
			goto bad;
		}
		buf[o++] = (unsigned char)(acc >> 4);
	} else if (q == 3) {
		if (pad < 1) {
			goto bad;
		}
		buf[o++] = (unsigned char)(acc >> 10);
		buf[o++] = (unsigned char)(acc >> 2);
	}
	buf[o] = '\0';
	*out = buf;
	*len = o;
	return 0;
bad:
	free(buf);
	return error_set(ICPD_EPROTO, "invalid base64");
}

static bool utf8_valid(const unsigned char *s, size_t n)
{
	size_t i = 0;

	while (i < n) {
		unsigned char c = s[i];
		size_t k;
		uint32_t cp;

		if (c < 0x80) {
			i++;
			continue;
		} else if ((c & 0xE0) == 0xC0) {
			k = 1;
			cp = c & 0x1F;
		} else if ((c & 0xF0) == 0xE0) {
			k = 2;
			cp = c & 0x0F;
		} else if ((c & 0xF8) == 0xF0) {
			k = 3;
			cp = c & 0x07;
		} else {
			return false;
		}
		for (size_t j = 1; j <= k; j++) {
			if (i + j >= n || (s[i + j] & 0xC0) != 0x80) {
				return false;
			}
			cp = (cp << 6) | (s[i + j] & 0x3F);
		}
		if ((k == 1 && cp < 0x80) || (k == 2 && cp < 0x800) || (k == 3 && cp < 0x10000) ||
			cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
			return false;
		}
		i += k + 1;
	}
	return true;
}

/* ---------------------------------------------------------------- fields */

static const char *rec_name(const json_t *rec)
{
	const char *n = json_string_value(json_object_get(rec, "recordName"));

	return n ? n : "(no recordName)";
}

const json_t *cloudkit_field(const json_t *rec, const char *name)
{
	const json_t *f = json_object_get(json_object_get(rec, "fields"), name);

	return json_is_object(f) ? json_object_get(f, "value") : NULL;
}

const char *cloudkit_field_str(const json_t *rec, const char *name)
{
	return json_string_value(cloudkit_field(rec, name));
}

bool cloudkit_field_int(const json_t *rec, const char *name, int64_t *out)
{
	const json_t *v = cloudkit_field(rec, name);

	if (json_is_integer(v)) {
		*out = (int64_t)json_integer_value(v);
		return true;
	}
	if (json_is_real(v)) {
		double d = json_real_value(v);

		if (d > -9.2e18 && d < 9.2e18) {
			*out = (int64_t)d;
			return true;
		}
	}
	return false;
}

static bool field_double(const json_t *rec, const char *name, double *out)
{
	const json_t *v = cloudkit_field(rec, name);

	if (json_is_number(v)) {
		*out = json_number_value(v);
		return true;
	}
	return false;
}

/*
 * Decode a text field that is STRING (the text) or ENCRYPTED_BYTES
 * (base64 of UTF-8).  Returns 0 with *out set (owned), 1 when absent, or
 * -1 when present but undecodable (*why says what).
 */
static int field_text(const json_t *rec, const char *name, char **out, const char **why)
{
	const json_t *f = json_object_get(json_object_get(rec, "fields"), name);
	const char *type, *val;
	unsigned char *raw = NULL;
	size_t len = 0;

	*out = NULL;
	if (!json_is_object(f)) {
		return 1;
	}
	val = json_string_value(json_object_get(f, "value"));
	type = json_string_value(json_object_get(f, "type"));
	if (!json_object_get(f, "value") || json_is_null(json_object_get(f, "value"))) {
		return 1;
	}
	if (!val) {
		*why = "value is not a string";
		return -1;
	}
	if (type && strcmp(type, "STRING") == 0) {
		if (!utf8_valid((const unsigned char *)val, strlen(val))) {
			*why = "not UTF-8";
			return -1;
		}
		*out = xstrdup(val);
		return 0;
	}
	if (!type || strcmp(type, "ENCRYPTED_BYTES") != 0) {
		*why = "unknown encoding type";
		return -1;
	}
	if (cloudkit_b64decode(val, &raw, &len) < 0) {
		error_clear();
		*why = "invalid base64";
		return -1;
	}
	if (memchr(raw, '\0', len) && strcmp(name, "filenameEnc") != 0) {
		/* NUL inside a caption: cut there (C strings) */
		len = strlen((char *)raw);
	}
	if (!utf8_valid(raw, len)) {
		free(raw);
		*why = "decodes to bytes that are not UTF-8";
		return -1;
	}
	if (memchr(raw, '\0', len)) {
		/* a NUL in a file name: the naming module turns it into '_' like
		 * icloudpd; keep it visible as U+2400-free text by mapping to '_' */
		for (size_t i = 0; i < len; i++) {
			if (raw[i] == '\0') {
				raw[i] = '_';
			}
		}
	}
	*out = (char *)raw;
	return 0;
}

/* Decoded binary field (ENCRYPTED_BYTES); 0, 1 absent, -1 bad. */
static int field_bytes(const json_t *rec, const char *name, unsigned char **out, size_t *len)
{
	const json_t *f = json_object_get(json_object_get(rec, "fields"), name);
	const char *val;

	*out = NULL;
	*len = 0;
	if (!json_is_object(f)) {
		return 1;
	}
	val = json_string_value(json_object_get(f, "value"));
	if (!val) {
		return json_object_get(f, "value") && !json_is_null(json_object_get(f, "value")) ? -1 : 1;
	}
	if (cloudkit_b64decode(val, out, len) < 0) {
		error_clear();
		return -1;
	}
	return 0;
}

/* ---------------------------------------------------------------- kinds */

static const char *const image_utis[] = {
	"public.heic", "public.heif", "public.jpeg", "public.png",
	"com.adobe.raw-image", "com.canon.cr2-raw-image", "com.canon.crw-raw-image",
	"com.sony.arw-raw-image", "com.fuji.raw-image", "com.panasonic.rw2-raw-image",
	"com.nikon.nrw-raw-image", "com.pentax.raw-image", "com.nikon.raw-image",
	"com.olympus.raw-image", "com.canon.cr3-raw-image", "com.olympus.or-raw-image",
	NULL,
};

static enum asset_kind kind_of(const char *item_type, const char *filename)
{
	if (!item_type) {
		return ASSET_UNKNOWN;
	}
	for (const char *const *u = image_utis; *u; u++) {
		if (strcmp(item_type, *u) == 0) {
			return ASSET_IMAGE;
		}
	}
	if (strcmp(item_type, "com.apple.quicktime-movie") == 0) {
		return ASSET_MOVIE;
	}
	/* any other UTI: image if the name says so (cloudkit-photos.md §4.3) */
	if (filename) {
		static const char *const exts[] = { ".heic", ".png", ".jpg", ".jpeg", NULL };
		size_t fl = strlen(filename);

		for (const char *const *e = exts; *e; e++) {
			size_t el = strlen(*e);

			if (fl >= el && strcasecmp(filename + fl - el, *e) == 0) {
				return ASSET_IMAGE;
			}
		}
	}
	return ASSET_MOVIE;
}

/* ---------------------------------------------------------------- versions */

struct slot_map {
	enum asset_size size;
	const char *prefix;
};

static const struct slot_map image_slots[] = {
	{ SIZE_ORIGINAL, "resOriginal" },
	{ SIZE_ALTERNATIVE, "resOriginalAlt" },
	{ SIZE_MEDIUM, "resJPEGMed" },
	{ SIZE_THUMB, "resJPEGThumb" },
	{ SIZE_ADJUSTED, "resJPEGFull" },
	{ SIZE_LIVE_ORIGINAL, "resOriginalVidCompl" },
	{ SIZE_LIVE_MEDIUM, "resVidMed" },
	{ SIZE_LIVE_THUMB, "resVidSmall" },
};

static const struct slot_map movie_slots[] = {
	{ SIZE_ORIGINAL, "resOriginal" },
	{ SIZE_MEDIUM, "resVidMed" },
	{ SIZE_THUMB, "resVidSmall" },
};

/* key = prefix + suffix, cut at 63 bytes as snprintf would (without its cost) */
static void field_key(char key[64], const char *prefix, const char *suffix)
{
	size_t a = strlen(prefix), b = strlen(suffix);

	a = a < 63 ? a : 63;
	b = b < 63 - a ? b : 63 - a;
	memcpy(key, prefix, a);
	memcpy(key + a, suffix, b);
	key[a + b] = '\0';
}

/*
 * Fill one version from rec's <prefix>Res / <prefix>FileType.  Returns 1
 * when rec has no such resource, 0 when filled, -1 when present but
 * unusable: *why says what, and the caller reports it (once, saying whether
 * the version or the whole asset goes).
 */

static int version_from(const json_t *rec, const char *prefix, struct asset_version *v,
	const char **why)
{
	char key[64];
	const json_t *res, *url, *size;
	const char *uti, *sum;

	field_key(key, prefix, "Res");
	res = cloudkit_field(rec, key);
	if (!res) {
		return 1;
	}
	if (!json_is_object(res)) {
		*why = "is not a resource object";
		return -1;
	}
	url = json_object_get(res, "downloadURL");
	size = json_object_get(res, "size");
	sum = json_string_value(json_object_get(res, "fileChecksum"));
	if (!json_is_string(url) || json_string_length(url) == 0) {
		*why = "has no downloadURL";
		return -1;
	}
	if (!json_is_integer(size) || json_integer_value(size) < 0) {
		*why = "has no valid size";
		return -1;
	}
	field_key(key, prefix, "FileType");
	uti = cloudkit_field_str(rec, key);
	v->present = true;
	v->url = xstrdup(json_string_value(url));
	v->size = (int64_t)json_integer_value(size);
	v->uti = uti ? xstrdup(uti) : NULL;
	v->checksum = sum ? xstrdup(sum) : NULL;
	if (!uti) {
		log_warn("record '%s': %s has no %s", rec_name(rec), prefix, key);
	}
	return 0;
}

/*
 * One version by §4.3: <prefix>Res on the asset record first, then on the
 * master.  Returns what version_from returns; *from is the record looked
 * at last (the one to name in a report).
 */
static int pick_version(const json_t *master, const json_t *asset, const char *prefix,
	struct asset_version *v, const json_t **from, const char **why)
{
	int r;

	*from = asset;
	r = version_from(asset, prefix, v, why);
	if (r == 1) {
		*from = master;
		r = version_from(master, prefix, v, why);
	}
	return r;
}

int cloudkit_record_version(const json_t *master, const json_t *asset, enum asset_kind kind,
	enum asset_size size, struct asset_version *v)
{
	const struct slot_map *slots = kind == ASSET_MOVIE ? movie_slots : image_slots;
	size_t nslots = kind == ASSET_MOVIE ? ARRAY_SIZE(movie_slots) : ARRAY_SIZE(image_slots);

	for (size_t i = 0; i < nslots; i++) {
		const json_t *from = NULL;
		const char *why = NULL;

		if (slots[i].size != size) {
			continue;
		}
		/* as in a listing: the asset record first, then the master */
		return pick_version(master, asset, slots[i].prefix, v, &from, &why) == 0 ? 0 : 1;
	}
	return 1;
}

/* ---------------------------------------------------------------- pair */

int cloudkit_record_pair(const json_t *master, const json_t *asset, const char *zone,
	struct asset *a)
{
	const char *mname = rec_name(master), *why = NULL, *s;
	const json_t *from = NULL;
	const struct slot_map *slots;
	size_t nslots;
	int64_t iv;
	double dv;
	int r;
	unsigned char *bytes = NULL;
	size_t blen = 0;

	a->master_id = xstrdup(mname);
	a->asset_id = xstrdup(rec_name(asset));
	a->zone = zone ? xstrdup(zone) : NULL;
	s = json_string_value(json_object_get(asset, "recordChangeTag"));
	a->change_tag = s ? xstrdup(s) : NULL;

	/* the original first: an asset without a usable one is skipped, and
	 * that is the one thing reported about it */
	r = pick_version(master, asset, "resOriginal", &a->versions[SIZE_ORIGINAL], &from, &why);
	if (r < 0) {
		log_warn("record '%s': resOriginalRes %s; asset skipped", rec_name(from), why);
		return ICPD_EASSET;
	}
	if (r == 1) {
		log_warn("record '%s' (asset '%s'): no resOriginalRes; asset skipped", mname,
			a->asset_id);
		return ICPD_EASSET;
	}

	/* file name: each encoding; a bad one degrades to "no name" (the
	 * naming module then uses the recordName fallback, §6.1-2) */
	r = field_text(master, "filenameEnc", &a->filename, &why);
	if (r == 1) {
		log_warn("record '%s': no filenameEnc; a name is made from the record name", mname);
	} else if (r < 0) {
		log_warn("record '%s': filenameEnc %s; a name is made from the record name", mname, why);
	} else if (!*a->filename) {
		log_warn("record '%s': filenameEnc is empty; a name is made from the record name", mname);
		free(a->filename);
		a->filename = NULL;
	}

	s = cloudkit_field_str(master, "itemType");
	if (s) {
		a->item_type = xstrdup(s);
	} else {
		log_warn("record '%s': no itemType; treated as an image of unknown type", mname);
	}
	a->kind = kind_of(a->item_type, a->filename);

	/* the other versions (§4.3); an unusable one is dropped alone */
	if (a->kind == ASSET_MOVIE) {
		slots = movie_slots;
		nslots = ARRAY_SIZE(movie_slots);
	} else {
		slots = image_slots;
		nslots = ARRAY_SIZE(image_slots);
	}
	for (size_t i = 0; i < nslots; i++) {
		if (slots[i].size == SIZE_ORIGINAL) {
			continue;
		}
		r = pick_version(master, asset, slots[i].prefix, &a->versions[slots[i].size], &from,
			&why);
		if (r < 0) {
			log_warn("record '%s': %sRes %s; version skipped", rec_name(from), slots[i].prefix,
				why);
		}
	}

	/* dates and flags from the asset */
	if (cloudkit_field_int(asset, "assetDate", &iv)) {
		a->asset_date = iv;
	}
	if (cloudkit_field_int(asset, "addedDate", &iv)) {
		a->added_date = iv;
	}
	if (cloudkit_field_int(asset, "timeZoneOffset", &iv) && iv > -200000 && iv < 200000) {
		a->tz_offset = (int32_t)iv;
	}
	a->favorite = cloudkit_field_int(asset, "isFavorite", &iv) && iv != 0;
	a->hidden = cloudkit_field_int(asset, "isHidden", &iv) && iv != 0;
	a->deleted = cloudkit_field_int(asset, "isDeleted", &iv) && iv != 0;
	if (cloudkit_field_int(asset, "dateExpunged", &iv)) {
		a->date_expunged = iv;
	}
	if ((cloudkit_field_int(asset, "orientation", &iv) && iv >= 0 && iv <= 8) ||
		(cloudkit_field_int(master, "originalOrientation", &iv) && iv >= 0 && iv <= 8)) {
		a->orientation = (int)iv;
	}
	if (cloudkit_field_int(asset, "assetSubtypeV2", &iv) && iv >= 0 && iv < 1000) {
		a->subtype_v2 = (int)iv;
	}
	s = cloudkit_field_str(asset, "adjustmentType");
	if (s && *s) {
		a->adjustment_type = xstrdup(s);
	}
	s = cloudkit_field_str(asset, "adjustmentSimpleDataEnc");
	if (s) {
		a->adjustment_simple_data = xstrdup(s);
	}
	if (field_text(asset, "captionEnc", &a->caption, &why) < 0) {
		log_warn("record '%s': captionEnc %s; caption ignored", a->asset_id, why);
	}
	if (field_text(asset, "extendedDescEnc", &a->description, &why) < 0) {
		log_warn("record '%s': extendedDescEnc %s; description ignored", a->asset_id, why);
	}
	r = field_bytes(asset, "keywordsEnc", &bytes, &blen);
	if (r == 0 && cloudkit_plist_strings(bytes, blen, &a->keywords) < 0) {
		error_clear();
		r = -1;
	}
	if (r < 0) {
		log_warn("record '%s': keywordsEnc is not a plist array of strings; keywords ignored",
			a->asset_id);
	}
	free(bytes);
	bytes = NULL;
	r = field_bytes(asset, "locationEnc", &bytes, &blen);
	if (r == 1) {
		free(bytes);
		bytes = NULL;
		r = field_bytes(asset, "locationV2Enc", &bytes, &blen);
	}
	if (r == 0 && cloudkit_plist_location(bytes, blen, a) < 0) {
		error_clear();
		r = -1;
	}
	if (r < 0) {
		log_warn("record '%s': locationEnc is not a location plist; location ignored",
			a->asset_id);
	}
	free(bytes);
	if (!a->has_location && field_double(asset, "locationLatitude", &dv)) {
		double lon;

		if (field_double(asset, "locationLongitude", &lon)) {
			a->has_location = true;
			a->latitude = dv;
			a->longitude = lon;
		}
	}
	return 0;
}

/* ---------------------------------------------------------------- pages */

void cloudkit_page_push(struct cloudkit_page *page, struct asset *a, enum cloudkit_change c)
{
	/* capacity is the next power of two: grow when n is one */
	if (page->n == 0 || (page->n & (page->n - 1)) == 0) {
		size_t cap = page->n ? page->n * 2 : 1;

		page->assets = xrealloc(page->assets, cap * sizeof(*page->assets));
		page->changes = xrealloc(page->changes, cap * sizeof(*page->changes));
	}
	page->assets[page->n] = *a;
	page->changes[page->n] = c;
	page->n++;
	asset_init(a);
}

void cloudkit_pairs_init(struct cloudkit_pairs *p, bool changes)
{
	p->masters = json_object();
	p->assets = json_object();
	p->changes = changes;
	p->skipped = 0;
}

void cloudkit_pairs_release(struct cloudkit_pairs *p)
{
	json_decref(p->masters);
	json_decref(p->assets);
	p->masters = NULL;
	p->assets = NULL;
}

static bool looks_like_uuid(const char *s)
{
	size_t n = strlen(s);

	return n == 36 && s[8] == '-' && s[13] == '-' && s[18] == '-' && s[23] == '-';
}

static enum cloudkit_change classify(const struct asset *a, bool with_master)
{
	if (a->deleted) {
		return CHANGE_SOFT_DELETED;
	}
	if (a->hidden) {
		return CHANGE_HIDDEN;
	}
	if (with_master) {
		return CHANGE_NEW;
	}
	if (a->favorite) {
		return CHANGE_FAVORITED;
	}
	return CHANGE_EDITED;
}

static void emit_pair(struct cloudkit_pairs *p, const json_t *m, const json_t *as, const char *zone,
	struct cloudkit_page *page, bool with_master)
{
	struct asset a;

	asset_init(&a);
	if (cloudkit_record_pair(m, as, zone, &a) < 0) {
		asset_release(&a);
		p->skipped++;
		page->skipped++;
		return;
	}
	cloudkit_page_push(page, &a, p->changes ? classify(&a, with_master) : CHANGE_NEW);
}

int cloudkit_pairs_page(struct cloudkit_pairs *p, json_t *records, const char *zone,
	struct cloudkit_page *page)
{
	size_t i;
	json_t *rec;
	json_t *order = json_array(); /* master names in page order */

	if (!json_is_array(records)) {
		json_decref(order);
		return error_set(ICPD_EPROTO, "response has no records array");
	}
	json_array_foreach(records, i, rec) {
		const char *type, *name;

		if (!json_is_object(rec)) {
			log_warn("record %zu of the page is not an object; skipped", i);
			p->skipped++;
			page->skipped++;
			continue;
		}
		name = json_string_value(json_object_get(rec, "recordName"));
		if (json_object_get(rec, "serverErrorCode")) {
			log_warn("record '%s': server error %s; skipped", name ? name : "?",
				json_string_value(json_object_get(rec, "serverErrorCode")) ?
					json_string_value(json_object_get(rec, "serverErrorCode")) : "?");
			p->skipped++;
			page->skipped++;
			continue;
		}
		if (!name || !*name) {
			log_warn("record %zu of the page has no recordName; skipped", i);
			p->skipped++;
			page->skipped++;
			continue;
		}
		if (json_is_true(json_object_get(rec, "deleted"))) {
			if (p->changes) {
				struct asset a;

				asset_init(&a);
				if (looks_like_uuid(name)) {
					a.asset_id = xstrdup(name);
				} else {
					a.master_id = xstrdup(name);
				}
				a.zone = zone ? xstrdup(zone) : NULL;
				a.purged = true;
				cloudkit_page_push(page, &a, CHANGE_PURGED);
				json_object_del(p->masters, name);
			} else {
				log_warn("record '%s' is marked deleted in a listing; skipped", name);
				p->skipped++;
				page->skipped++;
			}
			continue;
		}
		type = json_string_value(json_object_get(rec, "recordType"));
		if (!type) {
			log_warn("record '%s' has no recordType; skipped", name);
			p->skipped++;
			page->skipped++;
			continue;
		}
		if (strcmp(type, "CPLMaster") == 0) {
			page->masters++;
			if (json_object_get(p->masters, name)) {
				log_warn("record '%s': CPLMaster seen twice; the later one is used", name);
			} else {
				json_array_append_new(order, json_string(name));
			}
			json_object_set(p->masters, name, rec);
		} else if (strcmp(type, "CPLAsset") == 0) {
			const json_t *ref = cloudkit_field(rec, "masterRef");
			const char *mref = json_string_value(json_object_get(ref, "recordName"));

			if (!mref || !*mref) {
				log_warn("record '%s': CPLAsset without masterRef; skipped", name);
				p->skipped++;
				page->skipped++;
				continue;
			}
			if (json_object_get(p->assets, mref)) {
				/* iOS duplicates: icloudpd keeps the last one (§3.2) */
				log_warn("record '%s': a second CPLAsset for master '%s'; the later one is used",
					name, mref);
			}
			json_object_set(p->assets, mref, rec);
			/* the master may be on this page or pending from an earlier one */
			json_array_append_new(order, json_string(mref));
		} else if (p->changes) {
			/* albums, faces, memories... arrive in the changes feed */
			log_debug("record '%s': %s ignored", name, type);
		} else {
			log_warn("record '%s': unexpected record type '%s' in a listing; skipped", name, type);
			p->skipped++;
			page->skipped++;
		}
	}
	/* emit complete pairs in page order */
	json_array_foreach(order, i, rec) {
		const char *mname = json_string_value(rec);
		json_t *m = json_object_get(p->masters, mname);
		json_t *as = json_object_get(p->assets, mname);

		if (m && as) {
			json_incref(m);
			json_incref(as);
			json_object_del(p->masters, mname);
			json_object_del(p->assets, mname);
			emit_pair(p, m, as, zone, page, true);
			json_decref(m);
			json_decref(as);
		}
	}
	json_decref(order);
	return 0;
}

void cloudkit_pairs_flush(struct cloudkit_pairs *p, const char *zone, struct cloudkit_page *page)
{
	const char *key;
	json_t *v;

	(void)zone;
	json_object_foreach(p->masters, key, v) {
		log_msg(p->changes ? LOG_INFO : LOG_WARN,
			"record '%s': CPLMaster without its CPLAsset%s; skipped", key,
			p->changes ? " in the changes feed" : "");
		p->skipped++;
		page->skipped++;
	}
	json_object_foreach(p->assets, key, v) {
		log_warn("record '%s': CPLAsset whose CPLMaster '%s' never arrived; skipped",
			rec_name(v), key);
		p->skipped++;
		page->skipped++;
	}
	json_object_clear(p->masters);
	json_object_clear(p->assets);
}

int cloudkit_pairs_lone_asset(struct cloudkit_pairs *p, const json_t *master, const char *zone,
	struct cloudkit_page *page)
{
	const char *mname = rec_name(master);
	json_t *as = json_object_get(p->assets, mname);

	if (!as) {
		return 0;
	}
	json_incref(as);
	json_object_del(p->assets, mname);
	emit_pair(p, master, as, zone, page, false);
	json_decref(as);
	return 0;
}

int cloudkit_page_decode(const char *text, size_t len, const char *zone, struct cloudkit_page *page)
{
	json_error_t jerr;
	json_t *root = cloudkit_json_fast(text, len, true);
	json_t *records;
	struct cloudkit_pairs p;
	const char *tok;
	int err;

	memset(page, 0, sizeof(*page));
	if (!root) {
		root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	}
	if (!root) {
		return error_set(ICPD_EPROTO, "invalid JSON in a CloudKit page: %s (line %d)", jerr.text,
			jerr.line);
	}
	records = json_object_get(root, "records");
	tok = json_string_value(json_object_get(root, "syncToken"));
	page->sync_token = tok ? xstrdup(tok) : NULL;
	page->more_coming = json_is_true(json_object_get(root, "moreComing"));
	cloudkit_pairs_init(&p, false);
	err = cloudkit_pairs_page(&p, records, zone, page);
	if (err == 0) {
		cloudkit_pairs_flush(&p, zone, page);
	}
	cloudkit_pairs_release(&p);
	json_decref(root);
	return err;
}

void cloudkit_page_release(struct cloudkit_page *page)
{
	if (!page) {
		return;
	}
	for (size_t i = 0; i < page->n; i++) {
		asset_release(&page->assets[i]);
	}
	free(page->assets);
	free(page->changes);
	free(page->sync_token);
	memset(page, 0, sizeof(*page));
}
