/*
 * Preloaded into nginx under valgrind (TEST_NGINX_USE_VALGRIND): dlclose() does nothing.
 *
 * At exit nginx dlclose()s its modules (a pool cleanup of the cycle), and the module
 * dlclose()s the app libraries it loaded. Their code and statics are then unmapped, so
 * valgrind can name no function in their stack traces, and whatever only a static of
 * theirs pointed to (a registry kept for the whole process, say) looks "definitely lost".
 * With the libraries left mapped, such memory is "still reachable", as it really is, and a
 * real leak (memory nothing points to any more) is still reported, with its stack.
 */
int dlclose(void *handle)
{
    (void) handle;
    return 0;
}
