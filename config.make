# Make rules for ngx-gateway, appended to objs/Makefile by nginx's configure (see config).
#
# `make modules` (and `make`, `make install`) build objs/ngx_http_gateway_module.so with
# cargo, against this nginx tree: NGINX_SOURCE_DIR is the tree, NGINX_BUILD_DIR its objs
# directory, where configure wrote ngx_auto_config.h and the Makefile whose flags the
# bindings follow. Cargo tracks what changed, so make always hands over to it.
#
# cargo's target dir is objs/ngx_gateway (gone with `make clean`), or $CARGO_TARGET_DIR
# when set at make time, to share one cache between builds.
#
# nginx does not link this module: the .so cargo makes already holds the module and the
# ngx_modules list nginx's dlopen looks for, so it is not registered with auto/module, which
# would generate a second ngx_modules list.

# ngx_addon_name is whichever addon configured last: name the module outright.
ngx_gateway_module=ngx_http_gateway_module$ngx_modext
ngx_gateway_objs=$(cd "$NGX_OBJS" && pwd)
ngx_gateway_so=$NGX_OBJS$ngx_dirsep$ngx_gateway_module
# As auto/install will resolve it, which runs after this.
case ".$NGX_MODULES_PATH" in
    ./*) ngx_gateway_modules_path=$NGX_MODULES_PATH ;;
    *) ngx_gateway_modules_path=$NGX_PREFIX/$NGX_MODULES_PATH ;;
esac
ngx_gateway_target="\$\${CARGO_TARGET_DIR:-$ngx_gateway_objs/ngx_gateway}"

cat << END                                                    >> $NGX_MAKEFILE

# ngx-gateway: the Rust module, built by cargo

modules:	$ngx_gateway_so

install:	ngx_gateway_install

.PHONY:	$ngx_gateway_so ngx_gateway_install

$ngx_gateway_so:
	cd '$ngx_gateway_dir' \\
		&& NGINX_SOURCE_DIR='$ngx_gateway_nginx_src' \\
		NGINX_BUILD_DIR='$ngx_gateway_objs' \\
		'$ngx_gateway_cargo' build --release -p ngx-gateway \\
		--manifest-path '$ngx_gateway_dir/Cargo.toml' \\
		--target-dir "$ngx_gateway_target"
	cp "$ngx_gateway_target/release/lib$ngx_gateway_module" '$ngx_gateway_so'

ngx_gateway_install:	$ngx_gateway_so
	test -d '\$(DESTDIR)$ngx_gateway_modules_path' \\
		|| mkdir -p '\$(DESTDIR)$ngx_gateway_modules_path'
	test ! -f '\$(DESTDIR)$ngx_gateway_modules_path/$ngx_gateway_module' \\
		|| mv '\$(DESTDIR)$ngx_gateway_modules_path/$ngx_gateway_module' \\
			'\$(DESTDIR)$ngx_gateway_modules_path/$ngx_gateway_module.old'
	cp '$ngx_gateway_so' '\$(DESTDIR)$ngx_gateway_modules_path/$ngx_gateway_module'

END
