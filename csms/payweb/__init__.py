"""The ad-hoc payment pages for drivers (`build_pay_app`, mounted at /pay on the OCPI
listener by csms.app): a transport beside csms.api and ocpi_cpo, over PaymentService.

No payment rules here (csms.services.payments) and no login (see csms.payweb.app).
"""

from csms.payweb.app import build_pay_app

__all__ = ["build_pay_app"]
