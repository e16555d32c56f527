/* One step down a complete (1-based heap) isolation tree, for native/_isolation.pyx.
 *
 * tree: the tree's region (uint64 order keys of the thresholds from byte 0, column byte
 * offsets into the transposed row block as uint32 from byte AF_HEAP_COLUMNS); cell + offset:
 * this row's entry of column 0 in the block (offset is a compile-time constant at every
 * call).  Returns node + node + (x > threshold), comparing unsigned keys.
 *
 * Optimised x86-64 GCC/Clang builds do the step in four instructions with one scratch
 * register (load column, load x, compare the threshold in memory with x, adc), so that
 * twelve rows' node indices, the tree and the block pointers all stay in registers.
 * Elsewhere (and in -O0 debug builds) the same expression in C.
 */
#ifndef ANOMALY_FAST_HEAP_STEP_H
#define ANOMALY_FAST_HEAP_STEP_H
#include <stddef.h>
#include <stdint.h>

#define AF_HEAP_COLUMNS 2048

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) && defined(__OPTIMIZE__)
static inline __attribute__((always_inline)) size_t
af_heap_step(const char *tree, size_t node, const char *cell, const int offset)
{
    size_t scratch;
    /* AT&T: cmpq %x, thr computes thr - x; carry = thr < x (unsigned) = x > thr */
    __asm__("movl %c[columns](%[tree],%[node],4), %k[scratch]\n\t"
            "movq %c[offset](%[cell],%[scratch]), %[scratch]\n\t"
            "cmpq %[scratch], (%[tree],%[node],8)\n\t"
            "adcq %[node], %[node]"
            : [node] "+r"(node), [scratch] "=&r"(scratch)
            : [tree] "r"(tree), [cell] "r"(cell), [offset] "i"(offset),
              [columns] "i"(AF_HEAP_COLUMNS)
            : "cc", "memory");
    return node;
}
#else
static inline size_t af_heap_step(const char *tree, size_t node, const char *cell, const int offset)
{
    uint32_t column = ((const uint32_t *)(tree + AF_HEAP_COLUMNS))[node];
    uint64_t threshold = ((const uint64_t *)tree)[node];
    return node + node + (*(const uint64_t *)(cell + offset + column) > threshold);
}
#endif

#endif
