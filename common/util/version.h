/* version.h - pstrain's version, written into summaries and exported models. */
#ifndef PST_VERSION_H
#define PST_VERSION_H

#define PSTRAIN_VERSION "0.3.0"

#endif
