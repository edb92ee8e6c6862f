/*
 * libjpeg(-turbo) behind setjmp/longjmp: see include/CJPEGShim.h for the contract.
 *
 * libjpeg's default error manager prints to stderr and calls exit(); ours longjmps back
 * into the shim function that called the library, keeps the formatted message, and
 * counts warnings without printing them (a daemon has no terminal). Warnings matter:
 * libjpeg answers a truncated file with "Premature end of JPEG file", pads the rest of
 * the image with gray and returns success, so the caller must see the count.
 */
#include "CJPEGShim.h"

#include <setjmp.h>
#include <stdio.h>   /* jpeglib.h uses FILE and size_t but does not include stdio.h */
#include <stdlib.h>
#include <string.h>
#include <jpeglib.h>
#include <jerror.h>

void lg_free(void *p) { free(p); }

struct lg_jpeg_reader {
    struct jpeg_decompress_struct cinfo;
    struct jpeg_error_mgr err;
    struct jpeg_progress_mgr progress;
    jmp_buf jmp;
    const uint8_t *data;
    size_t size;
    int max_scans;
    int created;      /* jpeg_create_decompress done: destroy must undo it */
    int header_read;
    int status;       /* set before longjmp when the cause is not a libjpeg error */
    long warnings;
    int saw_eof;
    char message[JMSG_LENGTH_MAX + 96];
};

static lg_jpeg_reader *reader_of(j_common_ptr cinfo) { return (lg_jpeg_reader *)cinfo->client_data; }

/* Fatal error: keep the message and jump back; libjpeg requires this not to return. */
static void reader_error_exit(j_common_ptr cinfo) {
    lg_jpeg_reader *r = reader_of(cinfo);
    (*cinfo->err->format_message)(cinfo, r->message);
    longjmp(r->jmp, 1);
}

/* msg_level < 0 is a warning (corrupt or missing data that libjpeg papered over);
 * levels >= 0 are trace messages, which we drop. The first warning's text is kept
 * unless an error message later replaces it. */
static void reader_emit_message(j_common_ptr cinfo, int msg_level) {
    if (msg_level >= 0) return;
    lg_jpeg_reader *r = reader_of(cinfo);
    cinfo->err->num_warnings++;
    if (r->warnings++ == 0) (*cinfo->err->format_message)(cinfo, r->message);
    if (cinfo->err->msg_code == JWRN_JPEG_EOF) r->saw_eof = 1;
}

static void quiet_output_message(j_common_ptr cinfo) { (void)cinfo; }

/* Called once per pass over the input; bounds the scan count of progressive files. */
static void reader_progress(j_common_ptr cinfo) {
    if (!cinfo->is_decompressor) return;
    lg_jpeg_reader *r = reader_of(cinfo);
    j_decompress_ptr d = (j_decompress_ptr)cinfo;
    if (d->input_scan_number > r->max_scans) {
        snprintf(r->message, sizeof r->message,
                 "progressive JPEG with more than %d scans (refused: each scan re-decodes the whole image)",
                 r->max_scans);
        r->status = LG_ERR_UNSUPPORTED;
        longjmp(r->jmp, 1);
    }
}

static int reader_failed(lg_jpeg_reader *r) {
    if (r->status != LG_OK) return r->status;
    return r->saw_eof ? LG_ERR_TRUNCATED : LG_ERR_CORRUPT;
}

lg_jpeg_reader *lg_jpeg_create(const uint8_t *data, size_t size, int max_scans) {
    lg_jpeg_reader *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    r->data = data;
    r->size = size;
    r->max_scans = max_scans > 0 ? max_scans : 1000;
    r->cinfo.err = jpeg_std_error(&r->err);
    r->err.error_exit = reader_error_exit;
    r->err.emit_message = reader_emit_message;
    r->err.output_message = quiet_output_message;
    r->cinfo.client_data = r;
    return r;
}

static int color_space_of(const struct jpeg_decompress_struct *c) {
    switch (c->jpeg_color_space) {
    case JCS_GRAYSCALE: return c->num_components == 1 ? LG_JPEG_GRAY : LG_JPEG_OTHER;
    case JCS_YCbCr:
    case JCS_RGB: return c->num_components == 3 ? LG_JPEG_RGB : LG_JPEG_OTHER;
    case JCS_CMYK: return LG_JPEG_CMYK;
    case JCS_YCCK: return LG_JPEG_YCCK;
    default: return LG_JPEG_OTHER;
    }
}

int lg_jpeg_read_header(lg_jpeg_reader *r, lg_jpeg_info *info) {
    if (!r || !info || r->created) return LG_ERR_USAGE;
    memset(info, 0, sizeof *info);
    if (setjmp(r->jmp)) return reader_failed(r);
    jpeg_create_decompress(&r->cinfo);   /* keeps cinfo.err and cinfo.client_data */
    r->created = 1;
    r->progress.progress_monitor = reader_progress;
    r->cinfo.progress = &r->progress;
    jpeg_mem_src(&r->cinfo, r->data, (unsigned long)r->size);
    jpeg_read_header(&r->cinfo, TRUE);
    r->header_read = 1;
    info->width = r->cinfo.image_width;
    info->height = r->cinfo.image_height;
    info->components = r->cinfo.num_components;
    info->color_space = color_space_of(&r->cinfo);
    info->progressive = r->cinfo.progressive_mode ? 1 : 0;
    info->channels = info->color_space == LG_JPEG_GRAY ? 1 : info->color_space == LG_JPEG_RGB ? 3 : 0;
    return LG_OK;
}

int lg_jpeg_read_pixels(lg_jpeg_reader *r, uint8_t *out, size_t row_stride) {
    if (!r || !out || !r->header_read) return LG_ERR_USAGE;
    int space = color_space_of(&r->cinfo);
    if (space != LG_JPEG_GRAY && space != LG_JPEG_RGB) {
        snprintf(r->message, sizeof r->message, "JPEG colour space %d with %d components is not decoded",
                 (int)r->cinfo.jpeg_color_space, r->cinfo.num_components);
        return LG_ERR_UNSUPPORTED;
    }
    if (setjmp(r->jmp)) return reader_failed(r);
    r->cinfo.out_color_space = space == LG_JPEG_GRAY ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_start_decompress(&r->cinfo);
    if (r->cinfo.output_components != (space == LG_JPEG_GRAY ? 1 : 3) ||
        r->cinfo.output_width != r->cinfo.image_width || r->cinfo.output_height != r->cinfo.image_height) {
        snprintf(r->message, sizeof r->message, "unexpected libjpeg output geometry");
        r->status = LG_ERR_USAGE;
        longjmp(r->jmp, 1);
    }
    /* Hand libjpeg up to 16 rows per call: fewer round trips through its row buffers. */
    JSAMPROW rows[16];
    while (r->cinfo.output_scanline < r->cinfo.output_height) {
        JDIMENSION first = r->cinfo.output_scanline;
        JDIMENSION n = r->cinfo.output_height - first;
        if (n > 16) n = 16;
        for (JDIMENSION i = 0; i < n; i++) rows[i] = out + (size_t)(first + i) * row_stride;
        jpeg_read_scanlines(&r->cinfo, rows, n);
    }
    jpeg_finish_decompress(&r->cinfo);
    return LG_OK;
}

long lg_jpeg_num_warnings(const lg_jpeg_reader *r) { return r ? r->warnings : 0; }
int lg_jpeg_saw_eof(const lg_jpeg_reader *r) { return r ? r->saw_eof : 0; }
const char *lg_jpeg_message(const lg_jpeg_reader *r) { return r ? r->message : ""; }

void lg_jpeg_destroy(lg_jpeg_reader *r) {
    if (!r) return;
    if (r->created) jpeg_destroy_decompress(&r->cinfo);
    free(r);
}

/* ------------------------------------------------------------- encoder ---- */

typedef struct {
    struct jpeg_compress_struct cinfo;
    struct jpeg_error_mgr err;
    jmp_buf jmp;
    unsigned char *buffer;   /* grown by jpeg_mem_dest with malloc */
    unsigned long size;
    char message[JMSG_LENGTH_MAX];
} lg_jpeg_writer;

static void writer_error_exit(j_common_ptr cinfo) {
    lg_jpeg_writer *w = (lg_jpeg_writer *)cinfo->client_data;
    (*cinfo->err->format_message)(cinfo, w->message);
    longjmp(w->jmp, 1);
}

static void quiet_emit_message(j_common_ptr cinfo, int msg_level) { (void)cinfo; (void)msg_level; }

int lg_jpeg_encode(const uint8_t *pixels, uint32_t width, uint32_t height, int channels,
                   size_t row_stride, int quality, int progressive, uint8_t **out,
                   size_t *out_size, char *message, size_t message_size) {
    if (!pixels || !out || !out_size || (channels != 1 && channels != 3) || width == 0 || height == 0) {
        if (message && message_size) snprintf(message, message_size, "bad arguments to the JPEG encoder");
        return LG_ERR_USAGE;
    }
    /* Everything libjpeg touches lives behind one pointer that never changes after
     * setjmp, so nothing is lost to the longjmp. */
    lg_jpeg_writer *w = calloc(1, sizeof *w);
    if (!w) return LG_ERR_NOMEM;
    w->cinfo.err = jpeg_std_error(&w->err);
    w->err.error_exit = writer_error_exit;
    w->err.emit_message = quiet_emit_message;
    w->err.output_message = quiet_output_message;
    w->cinfo.client_data = w;
    if (setjmp(w->jmp)) {
        if (message && message_size) snprintf(message, message_size, "%s", w->message);
        /* w->buffer is not freed: after a growth it may point at a block libjpeg already
         * freed, and with valid arguments the only possible error is out-of-memory. */
        jpeg_destroy_compress(&w->cinfo);
        free(w);
        return LG_ERR_CORRUPT;
    }
    jpeg_create_compress(&w->cinfo);
    jpeg_mem_dest(&w->cinfo, &w->buffer, &w->size);
    w->cinfo.image_width = width;
    w->cinfo.image_height = height;
    w->cinfo.input_components = channels;
    w->cinfo.in_color_space = channels == 1 ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_set_defaults(&w->cinfo);
    jpeg_set_quality(&w->cinfo, quality < 1 ? 1 : quality > 100 ? 100 : quality, TRUE);
    if (progressive) jpeg_simple_progression(&w->cinfo);
    jpeg_start_compress(&w->cinfo, TRUE);
    while (w->cinfo.next_scanline < height) {
        JSAMPROW row = (JSAMPROW)(pixels + (size_t)w->cinfo.next_scanline * row_stride);
        jpeg_write_scanlines(&w->cinfo, &row, 1);
    }
    jpeg_finish_compress(&w->cinfo);
    *out = w->buffer;
    *out_size = w->size;
    jpeg_destroy_compress(&w->cinfo);   /* the mem destination's buffer outlives it */
    free(w);
    return LG_OK;
}
