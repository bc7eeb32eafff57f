# A stand-in for the OpenWrt buildroot's rules.mk, used by
# openwrt/build-ipk.sh to run the real package Makefiles without the SDK.
# See package.mk.
