# A stand-in for the OpenWrt buildroot's include/package.mk.
#
# openwrt/build-ipk.sh runs the real openwrt/masqmail/Makefile (and the
# LuCI app's) with GNU make against these stubs, so the .ipk files built
# here hold exactly what the Makefile's install rule installs, with the
# control fields it declares. Nothing is compiled: the binary comes from
# the cross build (PKG_INSTALL_DIR/bin/masqmail).
#
# Inputs (make variables): STUB_SRC (the source tree, as PKG_BUILD_DIR),
# STUB_INSTALL (PKG_INSTALL_DIR), STUB_OUT (where to write), PKGARCH.
#
# `make stub-pack` writes for each package NAME:
#   STUB_OUT/NAME/data/            the installed tree
#   STUB_OUT/NAME/control/control  the control file, Installed-Size left
#                                  for build-ipk.sh to fill in
#   STUB_OUT/NAME/control/{conffiles,postinst-pkg,prerm-pkg}  as declared

INSTALL_DIR:=install -d -m0755
INSTALL_BIN:=install -m0755
INSTALL_DATA:=install -m0644
INSTALL_CONF:=install -m0600
LN:=ln -sf
CP:=cp -fpR

PKG_BUILD_DIR:=$(STUB_SRC)
PKG_INSTALL_DIR:=$(STUB_INSTALL)

comma:=,
# "+a @b +c" -> "a, c" (the feed's own mergelist of IDEPEND)
stub_depends=$(subst $(eval) ,$(comma) ,$(strip $(subst +,,$(filter-out @%,$(1)))))
# One "Field: value" line, or nothing for an empty value.
define stub_field
$(if $(strip $(2)),$(1): $(strip $(2))
)
endef

define stub_control
Package: $(1)
Version: $(PKG_VERSION)-r$(PKG_RELEASE)
$(call stub_field,Depends,$(call stub_depends,$(DEPENDS)))$(call stub_field,Alternatives,$(subst $(eval) ,$(comma) ,$(strip $(ALTERNATIVES))))$(call stub_field,Source,$(patsubst $(STUB_FEED)/%,%,$(CURDIR)))$(call stub_field,SourceName,$(PKG_NAME))$(call stub_field,License,$(PKG_LICENSE))$(call stub_field,Section,$(SECTION))$(call stub_field,Require-User,$(USERID))$(call stub_field,URL,$(URL))$(call stub_field,Maintainer,$(PKG_MAINTAINER))Architecture: $(PKGARCH)
endef

# Make expands a whole recipe before it runs its first line, so the
# directories are made by $(shell) ahead of the $(file) writes; the texts
# are expanded once, at recipe time ($$), as package-pack.mk does.
define BuildPackage
$(eval $(call Package/$(1)))
stub-pack: stub-pack-$(1)
stub-pack-$(1):
	$$(shell rm -rf $(STUB_OUT)/$(1) && mkdir -p $(STUB_OUT)/$(1)/data $(STUB_OUT)/$(1)/control)
	$$(file >$(STUB_OUT)/$(1)/control/control,$$(call stub_control,$(1)))
	$$(file >$(STUB_OUT)/$(1)/control/description,$$(Package/$(1)/description))
	$$(if $$(Package/$(1)/conffiles),$$(file >$(STUB_OUT)/$(1)/control/conffiles,$$(Package/$(1)/conffiles)))
	$$(if $$(Package/$(1)/postinst),$$(file >$(STUB_OUT)/$(1)/control/postinst-pkg,$$(Package/$(1)/postinst)))
	$$(if $$(Package/$(1)/prerm),$$(file >$(STUB_OUT)/$(1)/control/prerm-pkg,$$(Package/$(1)/prerm)))
	$(call Package/$(1)/install,$(STUB_OUT)/$(1)/data)
endef
