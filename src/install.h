/*
 * install.h
 *	  Installation-time checks.
 */
#ifndef CONVEYOR_INSTALL_H
#define CONVEYOR_INSTALL_H

extern void cv_check_install_database(void);

#endif							/* CONVEYOR_INSTALL_H */
