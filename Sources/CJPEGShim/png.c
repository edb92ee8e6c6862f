/*
 * libpng's classic API behind setjmp/longjmp: see include/CJPEGShim.h for the contract.
 *
 * Our error callback longjmps to the reader's own jmp_buf (set by whichever shim
 * function is running), our read callback serves bytes from memory and notes when the
 * data ran out, so a failure can be told apart as truncated or corrupt.
 */
#include "CJPEGShim.h"

#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <png.h>

struct lg_png_reader {
    png_structp png;
    png_infop info;
    jmp_buf jmp;
    const uint8_t *data;
    size_t size;
    size_t pos;
    int eof;           /* the read callback was asked for bytes past the end */
    int header_read;
    int channels;
    uint32_t width, height;
    int warnings;
    char message[256];
};

static void reader_error(png_structp png, png_const_charp msg) {
    lg_png_reader *r = (lg_png_reader *)png_get_error_ptr(png);
    snprintf(r->message, sizeof r->message, "%s", msg ? msg : "libpng error");
    longjmp(r->jmp, 1);
}

/* Warnings are about ancillary chunks (bad CRC in tEXt, odd iCCP...): pixels are fine. */
static void reader_warning(png_structp png, png_const_charp msg) {
    (void)msg;
    lg_png_reader *r = (lg_png_reader *)png_get_error_ptr(png);
    r->warnings++;
}

static void reader_read(png_structp png, png_bytep out, size_t n) {
    lg_png_reader *r = (lg_png_reader *)png_get_io_ptr(png);
    if (n > r->size - r->pos) {
        r->eof = 1;
        png_error(png, "unexpected end of file");
    }
    memcpy(out, r->data + r->pos, n);
    r->pos += n;
}

lg_png_reader *lg_png_create(const uint8_t *data, size_t size) {
    lg_png_reader *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    r->data = data;
    r->size = size;
    r->png = png_create_read_struct(PNG_LIBPNG_VER_STRING, r, reader_error, reader_warning);
    if (!r->png) { free(r); return NULL; }
    r->info = png_create_info_struct(r->png);
    if (!r->info) { png_destroy_read_struct(&r->png, NULL, NULL); free(r); return NULL; }
    png_set_read_fn(r->png, r, reader_read);
    /* The pixel limit is ours to enforce (with the declared size in the message), so
     * lift libpng's own 1e6 x 1e6 cap; its 8 MB cap on one ancillary chunk stays. */
    png_set_user_limits(r->png, 0x7fffffff, 0x7fffffff);
    return r;
}

static int reader_failed(const lg_png_reader *r) { return r->eof ? LG_ERR_TRUNCATED : LG_ERR_CORRUPT; }

int lg_png_read_header(lg_png_reader *r, lg_png_info *out) {
    if (!r || !out || r->header_read) return LG_ERR_USAGE;
    memset(out, 0, sizeof *out);
    if (setjmp(r->jmp)) return reader_failed(r);
    png_read_info(r->png, r->info);
    png_uint_32 w = 0, h = 0;
    int depth = 0, color = 0, interlace = 0;
    png_get_IHDR(r->png, r->info, &w, &h, &depth, &color, &interlace, NULL, NULL);
    /* png_set_expand: palette -> RGB, gray 1/2/4 -> 8 bits (scaled: 1 -> 255, 4-bit v -> 17 v),
     * tRNS -> a full alpha channel. png_set_scale_16 rounds (v * 255 + 32895) >> 16,
     * i.e. round(v * 255 / 65535); png_set_strip_16 would truncate instead. No gamma
     * call is made, so no gamma conversion happens. */
    if (color == PNG_COLOR_TYPE_PALETTE || depth < 8 || png_get_valid(r->png, r->info, PNG_INFO_tRNS))
        png_set_expand(r->png);
    if (depth == 16) png_set_scale_16(r->png);
    png_set_interlace_handling(r->png);
    png_read_update_info(r->png, r->info);
    r->channels = png_get_channels(r->png, r->info);
    r->width = w;
    r->height = h;
    if (png_get_bit_depth(r->png, r->info) != 8 || r->channels < 1 || r->channels > 4 ||
        png_get_rowbytes(r->png, r->info) != (size_t)w * (size_t)r->channels) {
        snprintf(r->message, sizeof r->message, "unexpected libpng output format (depth %d, %d channels)",
                 png_get_bit_depth(r->png, r->info), r->channels);
        return LG_ERR_UNSUPPORTED;
    }
    r->header_read = 1;
    out->width = w;
    out->height = h;
    out->channels = r->channels;
    out->bit_depth = depth;
    out->color_type = color;
    out->interlaced = interlace == PNG_INTERLACE_ADAM7 ? 1 : 0;
    return LG_OK;
}

int lg_png_read_pixels(lg_png_reader *r, uint8_t *out, size_t row_stride) {
    if (!r || !out || !r->header_read) return LG_ERR_USAGE;
    png_bytepp rows = malloc(sizeof(png_bytep) * (r->height ? r->height : 1));
    if (!rows) return LG_ERR_NOMEM;
    for (uint32_t y = 0; y < r->height; y++) rows[y] = out + (size_t)y * row_stride;
    if (setjmp(r->jmp)) {
        free(rows);
        return reader_failed(r);
    }
    png_read_image(r->png, rows);
    /* Reading on to IEND checks the CRCs of the chunks that follow the image data and
     * notices a file cut short. */
    png_read_end(r->png, NULL);
    free(rows);
    return LG_OK;
}

const char *lg_png_message(const lg_png_reader *r) { return r ? r->message : ""; }
int lg_png_num_warnings(const lg_png_reader *r) { return r ? r->warnings : 0; }

void lg_png_destroy(lg_png_reader *r) {
    if (!r) return;
    png_destroy_read_struct(&r->png, &r->info, NULL);
    free(r);
}

/* ------------------------------------------------------------- encoder ---- */

typedef struct {
    png_structp png;
    png_infop info;
    jmp_buf jmp;
    uint8_t *buffer;
    size_t size, capacity;
    int nomem;
    char message[256];
} lg_png_writer;

static void writer_error(png_structp png, png_const_charp msg) {
    lg_png_writer *w = (lg_png_writer *)png_get_error_ptr(png);
    snprintf(w->message, sizeof w->message, "%s", msg ? msg : "libpng error");
    longjmp(w->jmp, 1);
}

static void writer_warning(png_structp png, png_const_charp msg) { (void)png; (void)msg; }

static void writer_write(png_structp png, png_bytep data, size_t n) {
    lg_png_writer *w = (lg_png_writer *)png_get_io_ptr(png);
    if (n > w->capacity - w->size) {
        size_t cap = w->capacity ? w->capacity : 4096;
        while (cap - w->size < n) cap *= 2;
        uint8_t *grown = realloc(w->buffer, cap);
        if (!grown) { w->nomem = 1; png_error(png, "out of memory"); }
        w->buffer = grown;
        w->capacity = cap;
    }
    memcpy(w->buffer + w->size, data, n);
    w->size += n;
}

static void writer_flush(png_structp png) { (void)png; }

int lg_png_encode(const uint8_t *pixels, uint32_t width, uint32_t height, int channels,
                  size_t row_stride, int level, uint8_t **out, size_t *out_size,
                  char *message, size_t message_size) {
    static const int color_types[5] = {0, PNG_COLOR_TYPE_GRAY, PNG_COLOR_TYPE_GRAY_ALPHA,
                                       PNG_COLOR_TYPE_RGB, PNG_COLOR_TYPE_RGB_ALPHA};
    if (!pixels || !out || !out_size || channels < 1 || channels > 4 || width == 0 || height == 0 ||
        width > 0x7fffffff || height > 0x7fffffff) {
        if (message && message_size) snprintf(message, message_size, "bad arguments to the PNG encoder");
        return LG_ERR_USAGE;
    }
    /* As in the JPEG encoder: all state behind one pointer that setjmp does not see change. */
    lg_png_writer *w = calloc(1, sizeof *w);
    if (!w) return LG_ERR_NOMEM;
    png_bytepp rows = malloc(sizeof(png_bytep) * height);
    if (!rows) { free(w); return LG_ERR_NOMEM; }
    for (uint32_t y = 0; y < height; y++) rows[y] = (png_bytep)(pixels + (size_t)y * row_stride);
    w->png = png_create_write_struct(PNG_LIBPNG_VER_STRING, w, writer_error, writer_warning);
    if (w->png) w->info = png_create_info_struct(w->png);
    if (!w->png || !w->info) {
        png_destroy_write_struct(&w->png, &w->info);
        free(rows);
        free(w);
        return LG_ERR_NOMEM;
    }
    if (setjmp(w->jmp)) {
        int status = w->nomem ? LG_ERR_NOMEM : LG_ERR_USAGE;
        if (message && message_size) snprintf(message, message_size, "%s", w->message);
        png_destroy_write_struct(&w->png, &w->info);
        free(w->buffer);
        free(rows);
        free(w);
        return status;
    }
    png_set_write_fn(w->png, w, writer_write, writer_flush);
    png_set_compression_level(w->png, level < 0 ? 0 : level > 9 ? 9 : level);
    png_set_IHDR(w->png, w->info, width, height, 8, color_types[channels], PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_set_rows(w->png, w->info, rows);
    png_write_png(w->png, w->info, PNG_TRANSFORM_IDENTITY, NULL);
    png_destroy_write_struct(&w->png, &w->info);
    *out = w->buffer;
    *out_size = w->size;
    free(rows);
    free(w);
    return LG_OK;
}
