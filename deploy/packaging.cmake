# Installation and Debian packages (CPack): refbus-broker, refbus-agent, refbus-tools.
#   cmake --install build --prefix /usr --component broker
#   (cd build && cpack -G DEB)
include(GNUInstallDirs)

install(TARGETS refbus-broker RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT broker)
install(FILES ${PROJECT_SOURCE_DIR}/deploy/systemd/refbus-broker.service
        DESTINATION lib/systemd/system COMPONENT broker)
install(FILES ${PROJECT_SOURCE_DIR}/deploy/examples/broker.toml
        DESTINATION share/doc/refbus-broker/examples COMPONENT broker)
# The example beside where the real file goes (/etc/refbus/broker.toml, written by the
# operator: the package never installs a live configuration).
install(FILES ${PROJECT_SOURCE_DIR}/deploy/examples/broker.toml
        DESTINATION /etc/refbus RENAME broker.toml.example COMPONENT broker)

install(TARGETS refbus-agent RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT agent)
install(FILES ${PROJECT_SOURCE_DIR}/deploy/systemd/refbus-agent.service
        DESTINATION lib/systemd/system COMPONENT agent)
install(FILES ${PROJECT_SOURCE_DIR}/deploy/examples/agent.toml ${PROJECT_SOURCE_DIR}/agent/API.md
        DESTINATION share/doc/refbus-agent COMPONENT agent)
install(FILES ${PROJECT_SOURCE_DIR}/deploy/examples/agent.toml
        DESTINATION /etc/refbus RENAME agent.toml.example COMPONENT agent)

install(TARGETS refbus-keys refbus-audit RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR}
        COMPONENT tools)
install(FILES ${PROJECT_SOURCE_DIR}/README.md ${PROJECT_SOURCE_DIR}/SECURITY.md
              ${PROJECT_SOURCE_DIR}/schema/PROTOCOL.md
              ${PROJECT_SOURCE_DIR}/deploy/examples/federation.toml
        DESTINATION share/doc/refbus-tools COMPONENT tools)

set(CPACK_PACKAGE_NAME refbus)
set(CPACK_PACKAGE_VENDOR "refbus maintainers")
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY
    "consent-scoped, end-to-end encrypted referral bus for child-victim support agencies")
set(CPACK_PACKAGE_CONTACT "maintainers@refbus.invalid")
set(CPACK_GENERATOR DEB)
set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_COMPONENTS_ALL broker agent tools)
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_BROKER_PACKAGE_NAME refbus-broker)
set(CPACK_DEBIAN_AGENT_PACKAGE_NAME refbus-agent)
set(CPACK_DEBIAN_TOOLS_PACKAGE_NAME refbus-tools)
set(CPACK_DEBIAN_BROKER_PACKAGE_DEPENDS "refbus-tools (= ${PROJECT_VERSION})")
set(CPACK_DEBIAN_AGENT_PACKAGE_DEPENDS "refbus-tools (= ${PROJECT_VERSION})")
# The refbus system user and /etc/refbus, /var/lib/refbus (0700) are made at install.
set(CPACK_DEBIAN_BROKER_PACKAGE_CONTROL_EXTRA ${PROJECT_SOURCE_DIR}/deploy/debian/postinst)
set(CPACK_DEBIAN_AGENT_PACKAGE_CONTROL_EXTRA ${PROJECT_SOURCE_DIR}/deploy/debian/postinst)
include(CPack)
