/*
 * ctl.h: `sigfs-appliance ctl`, the admin and test client of the appliance
 * (docs/appliance.md lists its commands).
 */
#ifndef SIGFS_APPLIANCE_CTL_H
#define SIGFS_APPLIANCE_CTL_H

/* argv[0] is "ctl"; returns the process exit status. */
int ctl_main(int argc, char **argv);

#endif
