# A stand-in for the LuCI feed's luci.mk (see package.mk): the app's
# htdocs/ goes to /www, root/ to /, and the package is arch "all" when it
# has no src/. The postinst does what luci.mk's does on a live system: drop
# LuCI's menu and module caches and make rpcd load the new ACL file.

LUCI_NAME?=$(notdir $(CURDIR))
PKG_NAME?=$(LUCI_NAME)
PKG_RELEASE?=1
override PKGARCH:=$(if $(LUCI_PKGARCH),$(LUCI_PKGARCH),all)

include $(INCLUDE_DIR)/package.mk

define Package/$(PKG_NAME)
  SECTION:=luci
  CATEGORY:=LuCI
  SUBMENU:=3. Applications
  TITLE:=$(LUCI_TITLE)
  DEPENDS:=$(LUCI_DEPENDS)
  URL:=$(LUCI_URL)
endef

define Package/$(PKG_NAME)/description
 $(LUCI_TITLE)
endef

define Package/$(PKG_NAME)/install
	if [ -d $(CURDIR)/htdocs ]; then \
		$(INSTALL_DIR) $(1)/www; \
		cp -pR $(CURDIR)/htdocs/* $(1)/www/; \
	fi
	if [ -d $(CURDIR)/root ]; then \
		$(INSTALL_DIR) $(1)/; \
		cp -pR $(CURDIR)/root/* $(1)/; \
	fi
endef

define Package/$(PKG_NAME)/postinst
#!/bin/sh
if [ -z "$${IPKG_INSTROOT}" ]; then
	rm -f /tmp/luci-indexcache.*
	rm -rf /tmp/luci-modulecache/
	/etc/init.d/rpcd reload 2>/dev/null
fi
true
endef

$(eval $(call BuildPackage,$(PKG_NAME)))
